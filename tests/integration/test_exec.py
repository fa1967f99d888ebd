# SPDX-License-Identifier: Apache-2.0
"""`ctr-jailer exec`: commands run in the guest of a running `run`, beside its
workload, over the agent channel. Every check is on what the command did or
observed inside the VM (its output, its exit status, a file the workload
reads), with a real VM."""
import fcntl
import os
import pty
import select
import signal
import stat
import struct
import subprocess
import termios
import time
from pathlib import Path

import pytest

from conftest import BINARY, runs


def wait_for_agent(runner, proc, timeout=120) -> Path:
    """The run's directory, once its exec socket is there."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        for d in runs(runner.run_dir):
            if (d / "agent.sock").exists():
                return d
        time.sleep(0.2)
    raise AssertionError("no agent.sock appeared")


def ctrj_exec(runner, args, timeout=60):
    return subprocess.run([str(BINARY), "exec", *args], env=runner.env(),
                          stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)


def set_winsize(fd, rows, cols):
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def read_until(fd, marker: bytes, timeout=60) -> bytes:
    seen, deadline = b"", time.monotonic() + timeout
    while marker not in seen and time.monotonic() < deadline:
        if select.select([fd], [], [], 1)[0]:
            try:
                seen += os.read(fd, 4096)
            except OSError:
                break
    return seen


def stop(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    return proc.communicate(timeout=120)


@pytest.mark.parametrize("jail", [(), ("--no-jail",)], ids=["jailed", "no-jail"])
def test_exec_runs_beside_the_workload(runner, jail):
    """A file the exec'd command writes is what the workload, waiting for it,
    then reads: the same guest, the same root. The channel's fd reaches
    QEMU through its jail and without one."""
    proc = runner.start(["sh", "-c", "while [ ! -f /handoff ]; do sleep 0.1; done; "
                         "echo workload-read:$(cat /handoff)"], options=jail)
    try:
        run = wait_for_agent(runner, proc)
        r = ctrj_exec(runner, [run.name, "sh", "-c", "echo from-exec-$$ > /handoff.tmp && "
                               "mv /handoff.tmp /handoff && cat /handoff"])
        assert r.returncode == 0, r.stderr
        token = r.stdout.decode().strip()
        assert token.startswith("from-exec-")
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        assert f"workload-read:{token}".encode() in out
    finally:
        stop(proc)


def test_exec_statuses_streams_options_stdin_and_tty(runner):
    proc = runner.start(["sleep", "120"], options=["-e", "WORKLOAD_VAR=from-run"])
    try:
        run = wait_for_agent(runner, proc)
        # the run directory and the socket are root's alone
        assert stat.S_IMODE(run.stat().st_mode) == 0o700
        assert stat.S_IMODE((run / "agent.sock").stat().st_mode) == 0o600
        rid = run.name

        # exit statuses: 0, 3, death by signal 9 (128+9); a prefix of the id will do
        assert ctrj_exec(runner, [rid, "true"]).returncode == 0
        assert ctrj_exec(runner, [rid[:6], "sh", "-c", "exit 3"]).returncode == 3
        assert ctrj_exec(runner, [rid, "sh", "-c", "kill -9 $$"]).returncode == 137

        # stdout and stderr kept apart
        r = ctrj_exec(runner, [rid, "sh", "-c", "echo to-out; echo to-err >&2; echo more-out"])
        assert (r.returncode, r.stdout, r.stderr) == (0, b"to-out\nmore-out\n", b"to-err\n")

        # -e, -u, -w as the command sees them
        r = ctrj_exec(runner, ["-e", "GREETING=hello there", "-u", "1000:2000", "-w", "/home",
                               rid, "sh", "-c",
                               'echo "$GREETING|$(id -u):$(id -g)|$(pwd)|$HOME"'])
        assert r.returncode == 0, r.stderr
        assert r.stdout == b"hello there|1000:2000|/home|/home/app\n"
        # the workload's environment, -e over it
        r = ctrj_exec(runner, ["-e", "PATH=/bin", rid, "sh", "-c", 'echo "$PATH|$WORKLOAD_VAR"'])
        assert r.stdout == b"/bin|from-run\n", r.stderr

        # stdin only with -i; without it the command reads EOF at once
        r = subprocess.run([str(BINARY), "exec", "-i", rid, "cat"], env=runner.env(),
                           input=b"hi\n", capture_output=True, timeout=60)
        assert (r.returncode, r.stdout) == (0, b"hi\n"), r.stderr
        r = subprocess.run([str(BINARY), "exec", rid, "sh", "-c", "cat; echo eof"],
                           env=runner.env(), input=b"not relayed\n", capture_output=True,
                           timeout=60)
        assert (r.returncode, r.stdout) == (0, b"eof\n")
        # a megabyte through stdin and back, under the channel's flow control
        blob = os.urandom(1 << 20)
        r = subprocess.run([str(BINARY), "exec", "-i", rid, "cat"], env=runner.env(),
                           input=blob, capture_output=True, timeout=120)
        assert r.returncode == 0 and r.stdout == blob

        # a missing command: 127 and one line saying why; a directory: 126
        r = ctrj_exec(runner, [rid, "/no/such/command"])
        assert r.returncode == 127
        assert r.stderr.decode().count("\n") == 1 and "/no/such/command" in r.stderr.decode()
        r = ctrj_exec(runner, [rid, "/home"])
        assert r.returncode == 126

        # -t: the command has a terminal (driven through a pty here)
        master, slave = pty.openpty()
        p = subprocess.Popen([str(BINARY), "exec", "-t", rid, "sh", "-c",
                              "[ -t 0 ] && [ -t 1 ] && echo IS-A-TTY; exit 4"],
                             env=runner.env(), stdin=slave, stdout=slave, stderr=slave)
        os.close(slave)
        seen = b""
        while p.poll() is None or select.select([master], [], [], 0)[0]:
            if select.select([master], [], [], 1)[0]:
                try:
                    seen += os.read(master, 4096)
                except OSError:
                    break
        os.close(master)
        assert p.wait(timeout=60) == 4
        assert b"IS-A-TTY" in seen
        # without -t it has none
        r = ctrj_exec(runner, [rid, "sh", "-c", "[ -t 0 ] || [ -t 1 ] || echo no-tty"])
        assert r.stdout == b"no-tty\n"

        assert proc.poll() is None  # the workload went on through all this
    finally:
        out, err = stop(proc)
    assert proc.returncode == 143, err
    # the run is gone: exec into it fails, in one line
    r = ctrj_exec(runner, [rid, "true"])
    assert r.returncode == 125 and r.stderr.decode().count("\n") == 1


def test_exec_unknown_run_fails_in_one_line(runner):
    r = ctrj_exec(runner, ["0123456789ab", "true"])
    assert r.returncode == 125
    msg = r.stderr.decode()
    assert msg.count("\n") == 1 and "0123456789ab" in msg, msg


def test_exec_sessions_run_side_by_side(runner):
    """Two sessions at once on the one channel: one waits on its stdin while
    the other runs to its end; then the first gets its input."""
    proc = runner.start(["sleep", "120"])
    try:
        rid = wait_for_agent(runner, proc).name
        first = subprocess.Popen([str(BINARY), "exec", "-i", rid, "sh", "-c",
                                  "read line; echo first:$line"], env=runner.env(),
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE)
        r = ctrj_exec(runner, [rid, "sh", "-c", "echo second; exit 5"])
        assert (r.returncode, r.stdout) == (5, b"second\n"), r.stderr
        assert first.poll() is None
        out, err = first.communicate(b"hello\n", timeout=60)
        assert (first.returncode, out) == (0, b"first:hello\n"), err
    finally:
        stop(proc)


def test_killed_run_ends_its_exec_sessions_and_gc_leaves_nothing(runner):
    """SIGKILL to the run while a session is open: the exec client says so in
    one line and fails; gc then removes the run, its socket included (the
    runner fixture checks that nothing is left, no VMM either)."""
    proc = runner.start(["sleep", "120"])
    try:
        rid = wait_for_agent(runner, proc).name
        client = subprocess.Popen([str(BINARY), "exec", rid, "sleep", "100"], env=runner.env(),
                                  stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE)
        time.sleep(1)
        proc.kill()
        proc.wait(timeout=30)
        out, err = client.communicate(timeout=60)
        assert client.returncode == 125
        assert err.decode().count("\n") == 1, err
    finally:
        stop(proc)
    subprocess.run([str(BINARY), "gc"], env=runner.env(), capture_output=True, timeout=60,
                   check=True)
    assert not runs(runner.run_dir)


def test_exec_terminal_size_and_signals_reach_the_command(runner):
    """-t: the terminal's size at the start and after a resize (SIGWINCH to
    exec) is the command's; without -t, SIGTERM to exec reaches the
    command, which traps it."""
    proc = runner.start(["sleep", "120"])
    try:
        rid = wait_for_agent(runner, proc).name
        master, slave = pty.openpty()
        set_winsize(slave, 33, 101)
        p = subprocess.Popen([str(BINARY), "exec", "-i", "-t", rid, "sh", "-c",
                              "stty size; read x; stty size; exit 0"],
                             env=runner.env(), stdin=slave, stdout=slave, stderr=slave)
        os.close(slave)
        assert b"33 101" in read_until(master, b"33 101")
        set_winsize(master, 40, 120)
        p.send_signal(signal.SIGWINCH)
        time.sleep(1)
        os.write(master, b"go\r")
        assert b"40 120" in read_until(master, b"40 120")
        assert p.wait(timeout=60) == 0
        os.close(master)

        p = subprocess.Popen([str(BINARY), "exec", rid, "sh", "-c",
                              'trap "echo got-term; exit 7" TERM; echo ready; '
                              "while true; do sleep 0.1; done"],
                             env=runner.env(), stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert p.stdout.readline() == b"ready\n"
        p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=60)
        assert (p.returncode, out) == (7, b"got-term\n"), err
    finally:
        stop(proc)


def test_exec_defaults_to_the_workloads_user_and_directory(runner):
    """As docker exec: without -u and -w, the workload's --user and --workdir."""
    proc = runner.start(["sleep", "120"], options=["--user", "1000", "--workdir", "/home/app"])
    try:
        rid = wait_for_agent(runner, proc).name
        r = ctrj_exec(runner, [rid, "sh", "-c", 'echo "$(id -u)|$(pwd)"'])
        assert r.stdout == b"1000|/home/app\n", r.stderr
        r = ctrj_exec(runner, ["-u", "0", "-w", "/", rid, "sh", "-c", 'echo "$(id -u)|$(pwd)|$HOME"'])
        assert r.stdout == b"0|/|/root\n", (r.stderr, stop(proc))
    finally:
        stop(proc)


def test_a_run_that_nobody_execs_into_ends_without_exec_warnings(runner):
    """The agent channel closes at every VM's end: that is no news unless it
    cuts exec sessions short (the demo printed a warning on every run)."""
    r = runner.run(["/bin/sh", "-c", "echo done"])
    assert r.returncode == 0, r.stderr
    assert b"done" in r.stdout
    assert b"exec:" not in r.stderr, r.stderr
