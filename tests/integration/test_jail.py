# SPDX-License-Identifier: Apache-2.0
"""The jail around QEMU, read from the host while the VM runs."""
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import BINARY, qemu_processes_for, wait_for_output, runs


def status(pid):
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        k, _, v = line.partition(":")
        fields[k] = v.strip()
    return fields


def cgroup_dirs(pid):
    dirs = []
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if "ctrj-" in path:
            for c in controllers.split(","):
                base = Path("/sys/fs/cgroup") / (c or "")
                if (base / path.lstrip("/")).exists():
                    dirs.append(base / path.lstrip("/"))
    return dirs


def observe(runner, options):
    proc = runner.start(["/bin/sh", "-c", "echo ready; sleep 1000"], options=options)
    try:
        wait_for_output(proc, b"ready")
        pids = qemu_processes_for(runner.run_dir)
        assert len(pids) == 1
        pid = pids[0]
        seen = {
            "status": status(pid),
            "root": sorted(os.listdir(f"/proc/{pid}/root")),
            "pidns": os.readlink(f"/proc/{pid}/ns/pid"),
            "cgroups": cgroup_dirs(pid),
            # the room is a tmpfs of QEMU's mount namespace: nothing of it
            # is made in the host's run directory
            "host_room": [sorted(os.listdir(r / "root")) for r in runs(runner.run_dir)
                          if (r / "root").is_dir()],
        }
        limits = {}
        for d in seen["cgroups"]:
            for f in ("memory.limit_in_bytes", "memory.max", "pids.max", "cpu.cfs_quota_us",
                      "cpu.max"):
                if (d / f).exists():
                    limits[f] = (d / f).read_text().strip()
        seen["limits"] = limits
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=120)
    assert proc.returncode == 143
    seen["cgroups_after"] = [d for d in seen["cgroups"] if d.exists()]
    return seen


def assert_confined(seen):
    """A QEMU in its jail: another uid, no capabilities, no new privileges,
    seccomp, a root of its own, its own pid namespace, a cgroup of ours."""
    st = seen["status"]
    assert st["Uid"].split()[0] != "0" and st["Gid"].split()[0] != "0"
    assert int(st["CapEff"], 16) == 0 and int(st["CapBnd"], 16) == 0
    assert st["NoNewPrivs"] == "1"
    assert st["Seccomp"] == "2"
    assert set(seen["root"]) <= {"boot", "dev", "etc", "lib", "lib64", "usr", "qmp.sock"}
    assert "home" not in seen["root"] and "root" not in seen["root"]
    assert all(room == [] for room in seen["host_room"]), seen["host_room"]
    assert seen["pidns"] != os.readlink("/proc/self/ns/pid")
    assert seen["cgroups"], "the VMM is not in a ctr-jailer cgroup"


def test_vmm_is_jailed_and_limited(runner):
    seen = observe(runner, ["--memory-limit", "600M", "--pids-limit", "200", "--cpu-quota", "1.5"])
    assert_confined(seen)
    assert seen["host_room"] == [[]]  # the run's room directory exists, and is empty
    limits = seen["limits"]
    assert limits.get("memory.limit_in_bytes", limits.get("memory.max")) == str(600 << 20)
    assert limits["pids.max"] == "200"
    assert limits.get("cpu.cfs_quota_us", limits.get("cpu.max", "").split(" ")[0]) == "150000"
    assert seen["cgroups_after"] == []        # removed at teardown
    assert runs(runner.run_dir) == []


def test_no_jail_negative_control(runner):
    seen = observe(runner, ["--no-jail"])
    st = seen["status"]
    assert st["Uid"].split()[0] == "0"
    assert int(st["CapEff"], 16) != 0
    assert st["NoNewPrivs"] == "0"
    assert st["Seccomp"] == "0"
    assert "proc" in seen["root"]             # the host's root
    assert seen["pidns"] == os.readlink("/proc/self/ns/pid")
    assert seen["cgroups"] == []


def test_memory_limit_below_guest_memory_refused(runner):
    r = runner.run(["/bin/true"], options=["--memory-limit", "100M"])
    assert r.returncode == 125
    assert b"--memory-limit" in r.stderr


def test_memory_limit_hit_is_a_clear_error(runner):
    # guest RAM 512M and a limit of 512M: when the guest touches most of its
    # memory, guest RAM plus QEMU's own overhead exceed the limit
    r = runner.run(["/bin/sh", "-c", "dd if=/dev/zero of=/dev/null bs=440M count=1; echo done"],
                   options=["--memory", "512", "--memory-limit", "512M"], timeout=300)
    assert r.returncode == 124, r.stderr
    assert b"memory limit" in r.stderr
    # control: with the default limit (guest memory + margin) the same workload runs
    r = runner.run(["/bin/sh", "-c", "dd if=/dev/zero of=/dev/null bs=440M count=1; echo done"],
                   options=["--memory", "512"], timeout=300)
    assert r.returncode == 0, r.stderr
    assert b"done" in r.stdout


def test_jail_and_cgroup_removed_after_sigkill(runner):
    for cleanup in ("next-run", "gc"):
        proc = runner.start(["/bin/sh", "-c", "echo ready; sleep 1000"])
        wait_for_output(proc, b"ready")
        pid = qemu_processes_for(runner.run_dir)[0]
        dirs = cgroup_dirs(pid)
        assert dirs
        proc.kill()
        proc.wait()
        time.sleep(0.5)
        if cleanup == "gc":
            subprocess.run([BINARY, "gc"], env=runner.env(), check=True, capture_output=True)
        else:
            assert runner.run(["/bin/true"]).returncode == 0
        assert [d for d in dirs if d.exists()] == []
        assert runs(runner.run_dir) == []
