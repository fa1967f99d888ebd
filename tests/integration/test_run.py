# SPDX-License-Identifier: Apache-2.0
"""The spine: exit codes, argv and env exactness, distroless, the ephemeral
root, graceful stop, zombie reaping, and nothing left behind."""
from pathlib import Path
import os
import signal
import subprocess
import time

import pytest

from conftest import parse_probe, qemu_processes_for, runs, timings, wait_for_output


@pytest.mark.parametrize("script,expected", [
    ("exit 0", 0),
    ("exit 7", 7),
    ("exit 255", 255),
    ("kill -9 $$", 137),   # killed by SIGKILL inside the guest
    ("kill -15 $$", 143),
])
def test_exit_status_is_the_workloads(runner, script, expected):
    result = runner.run(["/bin/sh", "-c", script])
    assert result.returncode == expected, result.stderr


def test_missing_command_is_127_and_named(runner):
    result = runner.run(["/no/such/command", "arg"])
    assert result.returncode == 127
    assert b"/no/such/command" in result.stderr
    # negative control: an existing command in the same rootfs runs
    assert runner.run(["/bin/true"]).returncode == 0


def test_non_executable_command_is_126(runner, make_rootfs):
    root = make_rootfs({"/not-exec": ("#!/bin/sh\necho hi\n", 0o644)})
    result = runner.run(["/not-exec"], rootfs=root)
    assert result.returncode == 126
    assert b"/not-exec" in result.stderr


def test_argv_reaches_workload_byte_exact(runner):
    args = ["with space", "'single'", '"double"', "$HOME $(id) `x`", "back\\slash\\",
            "new\nline", "", "tab\there", "ünï-cødé", "--rootfs", "-e", "--"]
    result = runner.run(["/probe", *args])
    assert result.returncode == 0, result.stderr
    report = parse_probe(result.stdout)
    assert report["argv"] == [b"/probe", *[a.encode() for a in args]]


def test_env_values_exact_in_process_and_var_environment(runner):
    values = {
        "WITH_EQUALS": b"a=b=c",
        "QUOTES": b"it's \"quoted\"",
        "NEWLINES": b"line1\nline2\n",
        "DOLLAR": b"$HOME `id` $(id) \\",
        "BYTES": "ünï".encode() + b"\xff\xfe",
        "EMPTY": b"",
    }
    options = []
    for k, v in values.items():
        options += [b"-e", k.encode() + b"=" + v]
    import subprocess as sp
    from conftest import BINARY
    argv = [str(BINARY).encode(), b"run", b"--rootfs", str(runner.rootfs).encode(),
            b"--memory", b"256", b"--cpus", b"1", b"--network", b"none", b"--no-env-passthrough",
            *options,
            b"--", b"/probe"]
    result = sp.run(argv, env=runner.env(), capture_output=True, timeout=180)
    assert result.returncode == 0, result.stderr
    report = parse_probe(result.stdout)
    env = dict(e.split(b"=", 1) for e in report["env"])
    for k, v in values.items():
        assert env[k.encode()] == v, k
    # /var/environment: mode 0600, and sourcing it restores the exact values
    assert report["envfile_mode"] == "600"
    envfile = runner.run_dir.parent / "environment"
    envfile.write_bytes(report["envfile"])
    for k, v in values.items():
        out = sp.run(["sh", "-c", f'. "$1"; printf %s "${k}"', "sh", str(envfile)],
                     capture_output=True, env={}, check=True).stdout
        assert out == v, k


def test_env_passthrough_and_layering(runner, tmp_path):
    env_file = tmp_path / "env"
    env_file.write_text("# comment\nFROM_FILE=file\nOVERRIDDEN=file\n\nLOOKED_UP\n")
    # --rootfs from a host shell passes nothing unless asked (test_env_passthrough.py)
    result = runner.run(["/probe"], options=["--env-passthrough", "--env-file", str(env_file),
                                             "-e", "OVERRIDDEN=flag"],
                        env={"PASSED": "through", "LOOKED_UP": "from-env", "TAP_IP": "10.9.9.1/30",
                             "OVERRIDDEN": "env"})
    assert result.returncode == 0, result.stderr
    env = dict(e.split(b"=", 1) for e in parse_probe(result.stdout)["env"])
    assert env[b"PASSED"] == b"through"
    assert env[b"FROM_FILE"] == b"file"
    assert env[b"LOOKED_UP"] == b"from-env"
    assert env[b"OVERRIDDEN"] == b"flag"
    assert b"TAP_IP" not in env          # the runtime's own settings stay on the host
    assert env[b"PATH"].startswith(b"/usr/local/sbin")   # docker's default PATH


def test_user_workdir_and_groups(runner):
    result = runner.run(["/probe"], options=["--user", "app", "--workdir", "/srv/data"])
    assert result.returncode == 0, result.stderr
    report = parse_probe(result.stdout)
    assert (report["uid"], report["gid"]) == ("1000", "1000")
    assert sorted(report["group"]) == ["1000", "2000"]
    assert report["cwd"] == "/srv/data"
    env = dict(e.split(b"=", 1) for e in report["env"])
    assert env[b"HOME"] == b"/home/app"
    # negative control: by default the workload is root in /
    report = parse_probe(runner.run(["/probe"]).stdout)
    assert (report["uid"], report["cwd"]) == ("0", "/")


def test_unknown_user_fails_setup(runner):
    result = runner.run(["/probe"], options=["--user", "nobody-here"])
    assert result.returncode == 123
    assert b"nobody-here" in result.stderr


def test_distroless_rootfs_with_one_static_binary(runner, tmp_path, probe_binary):
    root = tmp_path / "distroless"
    root.mkdir()
    (root / "app").write_bytes(probe_binary.read_bytes())
    (root / "app").chmod(0o755)
    assert not (root / "bin").exists()
    result = runner.run(["/app", "--exit", "5"], rootfs=root)
    assert result.returncode == 5, result.stderr
    assert parse_probe(result.stdout)["argv"] == [b"/app", b"--exit", b"5"]


def test_root_is_ephemeral_and_base_image_reused(runner, make_rootfs):
    root = make_rootfs()
    first = runner.run(["/bin/sh", "-c", "echo data > /marker && cat /marker"], rootfs=root,
                       options=["--timings"])
    assert first.returncode == 0, first.stderr
    assert b"data" in first.stdout     # the write itself worked
    assert timings(first.stderr)["base_image_built"] is True
    second = runner.run(["/bin/sh", "-c", "test -e /marker && echo present || echo absent"],
                        rootfs=root, options=["--timings"])
    assert second.returncode == 0, second.stderr
    assert b"absent" in second.stdout
    assert timings(second.stderr)["base_image_built"] is False
    # negative control: a changed rootfs is rebuilt
    (root / "new-file").write_text("x")
    third = runner.run(["/bin/true"], rootfs=root, options=["--timings"])
    assert timings(third.stderr)["base_image_built"] is True


def test_graceful_stop_runs_term_handler(runner):
    script = ('trap "echo handler-ran; exit 3" TERM; echo ready; '
              'while :; do sleep 0.1; done')
    proc = runner.start(["/bin/sh", "-c", script])
    wait_for_output(proc, b"ready")
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert b"handler-ran" in out, err
    assert proc.returncode == 3, err


def test_workload_ignoring_term_is_killed_after_grace(runner):
    proc = runner.start(["/bin/sh", "-c", 'trap "" TERM; echo ready; sleep 1000'],
                        options=["--stop-timeout", "2"])
    wait_for_output(proc, b"ready")
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 137, err
    assert time.monotonic() - started >= 2


def test_second_signal_kills_the_vm(runner):
    proc = runner.start(["/bin/sh", "-c", 'trap "" TERM; echo ready; sleep 1000'],
                        options=["--stop-timeout", "600"])
    wait_for_output(proc, b"ready")
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=60)
    assert proc.returncode == 137


def test_orphans_are_reaped(runner):
    # (sleep &) orphans a child that PID 1 must reap; `exec sleep` makes a
    # parent that never waits, so its child stays a zombie while it lives:
    # the negative control that shows the zombie check can see zombies.
    script = (
        "for i in 1 2 3; do (sleep 0.2 &); done; "
        "(sleep 0.1 & exec sleep 2) & "
        "sleep 1; echo during=$(grep -l '^State:.*Z' /proc/[0-9]*/status 2>/dev/null | wc -l); "
        "sleep 2; echo after=$(grep -l '^State:.*Z' /proc/[0-9]*/status 2>/dev/null | wc -l)"
    )
    result = runner.run(["/bin/sh", "-c", script])
    assert result.returncode == 0, result.stderr
    assert b"during=1" in result.stdout, result.stdout
    assert b"after=0" in result.stdout, result.stdout


def test_sigkill_of_runtime_leaves_nothing_the_next_run_cannot_clean(runner):
    proc = runner.start(["/bin/sh", "-c", "echo ready; sleep 1000"])
    wait_for_output(proc, b"ready")
    proc.kill()
    proc.wait()
    time.sleep(0.5)
    assert not qemu_processes_for(runner.run_dir)   # the VMM died with its parent
    assert len(runs(runner.run_dir)) == 1  # the killed run's directory remains
    result = runner.run(["/bin/true"])
    assert result.returncode == 0
    assert b"removed leftover run" in result.stderr
    assert runs(runner.run_dir) == []


def test_gc_command_removes_leftovers(runner):
    proc = runner.start(["/bin/sh", "-c", "echo ready; sleep 1000"])
    wait_for_output(proc, b"ready")
    proc.kill()
    proc.wait()
    from conftest import BINARY
    subprocess.run([BINARY, "gc"], env=runner.env(), check=True, capture_output=True)
    assert runs(runner.run_dir) == []


def test_gc_spares_a_live_run_from_another_pid_namespace(runner):
    """Containers may share a run base; a pid recorded in another pid
    namespace means nothing here. Liveness is the owner's lock."""
    argv = ["unshare", "-p", "-f", "--mount-proc", "--kill-child=SIGTERM",
            *runner.argv(["/bin/sh", "-c", "echo ready; sleep 1000"])]
    proc = subprocess.Popen(argv, env=runner.env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        wait_for_output(proc, b"ready")
        from conftest import BINARY
        subprocess.run([BINARY, "gc"], env=runner.env(), check=True, capture_output=True)
        assert len(runs(runner.run_dir)) == 1     # the live run was spared
        assert proc.poll() is None                # and its VM still runs
    finally:
        # the runtime is unshare's child (pid 1 of the new namespace)
        child = int(Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()[0])
        os.kill(child, signal.SIGTERM)
        proc.communicate(timeout=120)
    for _ in range(600):                     # the runtime tears down after unshare is gone
        if not runs(runner.run_dir):
            break
        time.sleep(0.1)
    assert runs(runner.run_dir) == []
