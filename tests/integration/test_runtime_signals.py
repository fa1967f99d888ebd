# SPDX-License-Identifier: Apache-2.0
"""Signals in runtime mode: `kill ID SIG` reaches the workload (PID 1's
child in the guest) through the run's supervisor and the agent, as runc
sends it to the container's init; KILL ends the VM (137); a signal before
the workload started ends the held or booting VM at once, with 128+N.
Driven as containerd's shim drives runc (test_runtime.py's world) and by a
real dockerd (test_runtime_docker.py's engine, one for this module).
Assertions are on what the workload printed and the exit codes."""
import fcntl
import json
import os
import pty
import re
import select
import struct
import subprocess
import termios
import time

import pytest

from test_docker import DOCKER
from test_runtime import drive_created, world  # noqa: F401 (world: a fixture)
from test_runtime_docker import docker, engine, run, wait_log  # noqa: F401 (fixtures)

pytestmark = pytest.mark.xdist_group("docker")


def test_term_before_start_ends_the_held_vm_at_once(world):
    """kill TERM right after create (the VM booting, or holding the
    workload): the container stops at once with 143, the workload never
    ran. It no longer hangs on the guest seeing Ctrl-Alt-Del: here the
    guest has no keyboard controller (i8042's initcall left out), so a
    graceful stop is never seen in the guest (before, the VM was killed
    after the grace period and its margin, with 137)."""
    world.env["EXTRA_KERNEL_BOOT_ARGS"] = "initcall_blacklist=i8042_init"
    b = world.bundle(["/bin/sh", "-c", "echo must not run; exit 9"])
    (kill, exited, delete), text = drive_created(
        world, b, "s1", [["kill", "s1", "TERM"], ["wait"], ["delete", "s1"]])
    assert kill["rc"] == 0, kill
    assert exited["exit"] == 143, (exited, text)
    assert delete["rc"] == 0, delete
    assert "must not run" not in text


def test_docker_kill_reaches_the_workload_then_stop_kills(docker):
    """docker kill -s USR1 runs the workload's trap (the container goes on);
    a workload that ignores TERM outlives docker stop's TERM and is killed
    after its timeout: 137 in docker inspect and docker wait."""
    name = "ctrj-sig"
    r = run(docker, "-d", "--name", name, "busybox", "sh", "-c",
            "trap 'echo got USR1' USR1; trap 'echo ignored TERM' TERM; echo serving; "
            "while :; do sleep 1 & wait $!; done")
    assert r.returncode == 0, r.stderr.decode()
    wait_log(docker, name, "serving")
    docker.docker("kill", "-s", "USR1", name)
    wait_log(docker, name, "got USR1", timeout=60)
    state = docker.docker("inspect", "-f", "{{.State.Running}}", name).stdout.strip()
    assert state == b"true", state
    t0 = time.monotonic()
    docker.docker("stop", "-t", "4", name)
    took = time.monotonic() - t0
    assert "ignored TERM" in docker.logs(name)
    assert took >= 4, took  # TERM did not end it: the KILL after the timeout did
    code = docker.docker("inspect", "-f", "{{.State.ExitCode}}", name).stdout.strip()
    assert code == b"137", code
    assert docker.docker("wait", name).stdout.strip() == b"137"
    docker.docker("rm", name)


def test_docker_stdout_and_stderr_apart(docker):
    """Without a terminal the workload's stdout and stderr reach the shim's
    two pipes apart (through the agent), with no kernel message or notice
    mixed in: docker run prints each on its own stream, docker logs keeps
    them apart. docker run -i: the engine's stdin is the workload's."""
    name = "ctrj-split"
    r = docker.docker("run", "-i", "--runtime", "ctrj", "--name", name, "busybox", "sh", "-c",
                      "read x; echo out-$x; echo err >&2; exit 2", input=b"in\n", check=False)
    assert r.returncode == 2, r.stderr.decode() + docker.log_tail()
    assert r.stdout == b"out-in\n" and r.stderr == b"err\n", r
    logs = docker.docker("logs", name)
    assert logs.stdout == b"out-in\n" and logs.stderr == b"err\n", logs
    docker.docker("rm", name)


class Pty:
    """A command on a pty of its own, as a user's terminal (30x100)."""

    def __init__(self, argv, env):
        self.pid, self.fd = pty.fork()
        if self.pid == 0:
            fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
            os.execvpe(argv[0], argv, env)
        self.seen = b""

    def expect_re(self, pattern, timeout=120):
        """The first match of pattern in what came so far, waited for."""
        deadline = time.monotonic() + timeout
        while not (m := re.search(pattern, self.seen)):
            left = deadline - time.monotonic()
            assert left > 0, f"{pattern!r} not seen in {self.seen[-2000:]!r}"
            if select.select([self.fd], [], [], left)[0]:
                try:
                    chunk = os.read(self.fd, 4096)
                except OSError:
                    chunk = b""
                assert chunk, f"{pattern!r} not seen before the end: {self.seen[-2000:]!r}"
                self.seen += chunk
        return m

    def expect(self, marker, timeout=120):
        self.expect_re(re.escape(marker.encode()), timeout)
        return self.seen

    def send(self, text):
        os.write(self.fd, text.encode())

    def wait(self, timeout=120):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                os.read(self.fd, 4096)   # drain: a full pty would block the writer
            except OSError:
                pass
            pid, st = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                os.close(self.fd)
                return os.waitstatus_to_exitcode(st)
            time.sleep(0.1)
        os.kill(self.pid, 9)
        raise AssertionError(f"still running: {self.seen[-2000:]!r}")


def test_docker_run_it_and_exec_it_through_a_pty(docker):
    """docker run -it: an interactive shell on a real terminal (a pty in
    the guest, our keystrokes in, its size ours once docker resized it);
    docker exec -it into it meanwhile; exit 3 ends the container with 3."""
    name = "ctrj-it"
    sh = Pty([DOCKER, "run", "-it", "--rm", "--name", name, "--runtime", "ctrj", "busybox",
              "sh"], docker.env)
    try:
        sh.expect("# ")
        sh.send("echo tty=$(tty) sum=$((6*7))\r")
        out = sh.expect("sum=42").decode(errors="replace")
        assert "tty=/dev/pts/" in out, out
        # docker resizes after the start: the new size reaches the guest's
        # pty (the marker is computed in the guest: the echoed line lacks it)
        for i in range(30):
            sh.send(f"echo S$((100+{i}))=$(stty size)=E\r")
            sh.expect(f"S{100 + i}=")
            size = sh.expect_re(rb"S%d=(\d+ \d+)=E" % (100 + i)).group(1)
            if size == b"30 100":
                break
            time.sleep(1)
        assert size == b"30 100", sh.seen
        ex = Pty([DOCKER, "exec", "-it", name, "sh", "-c",
                  "echo exec-tty=$(tty); read x; echo got-$x; exit 5"], docker.env)
        got = ex.expect("exec-tty=").decode(errors="replace")
        ex.send("hello\r")
        got = ex.expect("got-hello").decode(errors="replace")
        assert "exec-tty=/dev/pts/" in got, got
        assert ex.wait() == 5, ex.seen
        sh.send("exit 3\r")
        assert sh.wait() == 3, sh.seen
    finally:
        docker.docker("rm", "-f", name, check=False)


def test_hook_timeout_fails_create(world):
    """A createRuntime hook past its timeout is killed, what it started with
    it, and create fails (nothing left: no run, no state); a hook that ends
    within its timeout lets create go on (the held VM then deleted)."""
    pids = world.tmp / "hook.pids"
    b = world.bundle(["/bin/sh", "-c", "echo never"], name="slow")
    config = json.loads((b / "config.json").read_text())
    config["hooks"] = {"createRuntime": [{
        "path": "/bin/sh", "timeout": 1,
        "args": ["sh", "-c", f"sleep 60 & echo $$ $! > {pids}; wait"]}]}
    (b / "config.json").write_text(json.dumps(config))
    t0 = time.monotonic()
    r = subprocess.run(world.rt() + ["create", "--bundle", str(b), "h1"], env=world.env,
                       capture_output=True, text=True, timeout=120)
    took = time.monotonic() - t0
    assert r.returncode != 0, r
    assert "did not end within 1000 ms" in r.stderr, r.stderr
    assert took < 30, took
    for pid in map(int, pids.read_text().split()):
        assert not os.path.exists(f"/proc/{pid}") or \
            open(f"/proc/{pid}/stat").read().split()[2] == "Z", f"hook process {pid} left"
    assert not (world.root / "h1").exists()

    marker = world.tmp / "hook.ran"
    b = world.bundle(["/bin/sh", "-c", "echo never"], name="quick")
    config = json.loads((b / "config.json").read_text())
    config["hooks"] = {"createRuntime": [{
        "path": "/bin/sh", "timeout": 30, "args": ["sh", "-c", f"echo ran > {marker}"]}]}
    (b / "config.json").write_text(json.dumps(config))
    (delete, exited), text = drive_created(world, b, "h2", [["delete", "--force", "h2"],
                                                           ["wait"]])
    assert marker.read_text() == "ran\n"
    assert delete["rc"] == 0 and exited["exit"] == 137, (delete, exited)
