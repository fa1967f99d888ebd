# SPDX-License-Identifier: Apache-2.0
"""Signals in runtime mode: `kill ID SIG` reaches the workload (PID 1's
child in the guest) through the run's supervisor and the agent, as runc
sends it to the container's init; KILL ends the VM (137); a signal before
the workload started ends the held or booting VM at once, with 128+N.
Driven as containerd's shim drives runc (test_runtime.py's world) and by a
real dockerd (test_runtime_docker.py's engine, one for this module).
Assertions are on what the workload printed and the exit codes."""
import time

import pytest

from test_runtime import World, drive_created  # noqa: F401
from test_runtime import world  # noqa: F401  (fixture)
from test_runtime_docker import docker, engine, run, wait_log  # noqa: F401  (fixtures)

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
    them apart."""
    name = "ctrj-split"
    r = run(docker, "--name", name, "busybox", "sh", "-c", "echo out; echo err >&2; exit 2")
    assert r.returncode == 2, r.stderr.decode() + docker.log_tail()
    assert r.stdout == b"out\n" and r.stderr == b"err\n", r
    logs = docker.docker("logs", name)
    assert logs.stdout == b"out\n" and logs.stderr == b"err\n", logs
    docker.docker("rm", name)
