# SPDX-License-Identifier: Apache-2.0
"""The QEMU that makes a boot snapshot runs in the jail of the run that
needs it (or of `snapshot prepare`), as the run's own QEMU does: read from the host while it boots
to the snapshot point (stopped there with SIGSTOP for the look, then let
go), with test_jail.py's checks. --no-jail is the negative control: that
run's snapshot VM is as unconfined as its VM.

Each test has a cache of its own for snapshots (the shared cache's other
entries are linked in), so its first run makes one."""
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from conftest import BINARY, Runner, runs
from test_jail import assert_confined, cgroup_dirs, status
from test_snapshot import snapshot_makers


@pytest.fixture
def runner(kernel_ready, tmp_path, busybox_rootfs):
    """conftest's runner on a cache whose snapshots are this test's (also
    test_fc_snapshot's)."""
    cache = Path(tempfile.mkdtemp(prefix="cjsnapjail-", dir="/tmp"))
    for entry in kernel_ready.iterdir():
        if entry.name != "snapshots" and not entry.name.startswith("."):
            (cache / entry.name).symlink_to(entry)
    r = Runner(cache, tmp_path / "run", busybox_rootfs)
    try:
        yield r
        assert not runs(r.run_dir), "run directory not cleaned"
    finally:
        shutil.rmtree(cache, ignore_errors=True)


def observe_snapshot_vm(runner, options, sandboxed=True, prepare=False):
    """What the snapshot's QEMU is, once set up (sandboxed: once its
    seccomp filter is on, which QEMU installs after its exec), made by a
    run, or by `snapshot prepare` (prepare)."""
    if prepare:
        shape = ["--memory", "256", "--cpus", "1", "--network", "none"]  # runner.argv's
        proc = subprocess.Popen([str(BINARY), "snapshot", "prepare", *shape, *options],
                                env=runner.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    else:
        proc = runner.start(["/bin/true"], options=options)
    pid, deadline = None, time.monotonic() + 180
    try:
        while pid is None and proc.poll() is None and time.monotonic() < deadline:
            pid = next(iter(snapshot_makers(runner)), None)
            time.sleep(0.01)
        assert pid, f"no QEMU making the snapshot was seen: {proc.poll() and proc.stderr.read()}"
        while sandboxed and status(pid)["Seccomp"] != "2" and time.monotonic() < deadline:
            time.sleep(0.005)
        os.kill(pid, signal.SIGSTOP)
        try:
            seen = {"status": status(pid), "root": sorted(os.listdir(f"/proc/{pid}/root")),
                    "pidns": os.readlink(f"/proc/{pid}/ns/pid"),
                    "netns": os.readlink(f"/proc/{pid}/ns/net"), "cgroups": cgroup_dirs(pid),
                    # test_jail's assert_confined: nothing of the room on the host
                    "host_room": [sorted(os.listdir(r / "root")) for r in runs(runner.run_dir)
                                  if (r / "root").is_dir()]}
            limits = {}
            for d in seen["cgroups"]:
                for f in ("memory.limit_in_bytes", "memory.max", "pids.max"):
                    if (d / f).exists():
                        limits[f] = (d / f).read_text().strip()
            seen["limits"] = limits
        finally:
            os.kill(pid, signal.SIGCONT)
        out, err = proc.communicate(timeout=300)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    seen["cgroups_after"] = [d for d in seen["cgroups"] if d.exists()]
    seen["snapshots"] = list((runner.cache / "snapshots").glob("*/vmstate"))
    return seen


@pytest.mark.parametrize("prepare", [False, True], ids=["run", "snapshot-prepare"])
def test_snapshot_vm_is_jailed_like_the_run(runner, prepare):
    seen = observe_snapshot_vm(runner, ["--memory-limit", "600M", "--pids-limit", "200"],
                               prepare=prepare)
    assert_confined(seen)
    assert seen["netns"] != os.readlink("/proc/self/ns/net")
    assert all("-snap" in str(d) for d in seen["cgroups"]), seen["cgroups"]
    limits = seen["limits"]
    assert limits.get("memory.limit_in_bytes", limits.get("memory.max")) == str(600 << 20)
    assert limits["pids.max"] == "200"
    assert seen["cgroups_after"] == []  # removed with the snapshot's VM
    assert len(seen["snapshots"]) == 1  # and the snapshot made


def test_no_jail_snapshot_vm_negative_control(runner):
    seen = observe_snapshot_vm(runner, ["--no-jail"], sandboxed=False)
    st = seen["status"]
    assert st["Uid"].split()[0] == "0"
    assert int(st["CapEff"], 16) != 0
    assert "proc" in seen["root"]  # the host's root
    assert seen["pidns"] == os.readlink("/proc/self/ns/pid")
    assert seen["cgroups"] == []
