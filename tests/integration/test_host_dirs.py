# SPDX-License-Identifier: Apache-2.0
"""Host directories over virtiofs (-v /dir:/path, --mount type=bind), --tmpfs
and --read-only, checked from inside real VMs and on the host: what the
guest wrote, what it read, and no virtiofsd or socket left after any end."""
import os
import subprocess
import time
from pathlib import Path

import pytest

from conftest import BINARY, processes_with_arg, qemu_processes_for, wait_for_output


def virtiofsd_for(run_dir: Path):
    """virtiofsd processes started for runs under run_dir (their
    --socket-path lies in the run's directory)."""
    return processes_with_arg(f"--socket-path={run_dir}/".encode())


def sockets_under(run_dir: Path):
    return list(run_dir.glob("*/virtiofs-*")) if run_dir.exists() else []


@pytest.fixture
def shares(tmp_path):
    rw = tmp_path / "rw"
    ro = tmp_path / "ro"
    rw.mkdir()
    ro.mkdir()
    (rw / "owned").write_text("host data\n")
    os.chown(rw / "owned", 1234, 567)
    os.chmod(rw / "owned", 0o640)
    (ro / "keep").write_text("read only\n")
    return rw, ro


def test_host_dir_both_ways_ro_and_owners(runner, shares):
    rw, ro = shares
    script = (
        "stat -c 'owner %u %g %a' /h/owned; cat /h/owned; "
        "echo from-guest > /h/guest.txt; sync; "
        "if echo x > /r/new 2>/dev/null; then echo ro-write-ok; else echo ro-write-refused; fi; "
        "cat /r/keep; echo ready; "
        "i=0; while [ ! -e /h/later.txt ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done; "
        "cat /h/later.txt; grep -E ' /h | /r ' /proc/mounts")
    proc = runner.start(["/bin/sh", "-c", script],
                        options=["-v", f"{rw}:/h", "--mount", f"type=bind,source={ro},target=/r,readonly"])
    out = wait_for_output(proc, b"ready", timeout=240)
    assert (rw / "guest.txt").read_text() == "from-guest\n"   # guest -> host
    pids = virtiofsd_for(runner.run_dir)
    assert pids, "a virtiofsd per share while the VM runs"
    for pid in pids:    # each in a cgroup of its own, with a pids limit
        cgroups = Path(f"/proc/{pid}/cgroup").read_text()
        assert "-vfs0" in cgroups or "-vfs1" in cgroups, cgroups
    (rw / "later.txt").write_text("from-host\n")              # host -> guest
    rest, err = proc.communicate(timeout=240)
    out += rest
    assert proc.returncode == 0, err
    text = out.decode()
    assert "owner 1234 567 640" in text                         # host owner and mode
    assert "host data" in text and "read only" in text
    assert "ro-write-refused" in text and not (ro / "new").exists()
    assert "from-host" in text
    mounts = [l for l in text.splitlines() if " virtiofs " in l]
    assert any(" /h virtiofs rw" in l for l in mounts), mounts
    assert any(" /r virtiofs ro" in l for l in mounts), mounts
    # the file the guest's root made belongs to root on the host, as docker's
    assert (rw / "guest.txt").stat().st_uid == 0
    assert not virtiofsd_for(runner.run_dir)
    assert not sockets_under(runner.run_dir)
    assert not vfs_cgroups(), "its cgroup is removed"


def vfs_cgroups():
    return [p for p in Path("/sys/fs/cgroup").glob("**/ctrj-*-vfs*")]


def test_missing_source_created_by_v_refused_by_mount(runner, tmp_path):
    made = tmp_path / "made" / "here"
    r = runner.run(["/bin/sh", "-c", "echo hi > /m/f"], options=["-v", f"{made}:/m"])
    assert r.returncode == 0, r.stderr
    assert (made / "f").read_text() == "hi\n"
    assert oct(made.stat().st_mode & 0o777) == "0o755"
    missing = tmp_path / "missing"
    r = runner.run(["/bin/true"], options=["--mount", f"type=bind,source={missing},target=/m"])
    assert r.returncode == 125
    assert b"does not create it" in r.stderr and not missing.exists()
    assert not virtiofsd_for(runner.run_dir)


def test_tmpfs_and_read_only_root(runner):
    script = ("grep -E ' /scratch | /tmp | / ' /proc/mounts; "
              "if echo x > /rootfile 2>/dev/null; then echo root-write-ok; else echo root-write-refused; fi; "
              "echo t > /tmp/t && cat /tmp/t && echo tmp-ok; echo r > /run/r && echo run-ok; "
              "dd if=/dev/zero of=/scratch/big bs=1M count=16 2>/dev/null; "
              "echo scratch-bytes $(stat -c %s /scratch/big)")
    r = runner.run(["/bin/sh", "-c", script],
                   options=["--read-only", "--tmpfs", "/scratch:size=8m,mode=700"])
    assert r.returncode == 0, r.stderr
    text = r.stdout.decode()
    scratch = [l for l in text.splitlines() if " /scratch " in l]
    assert scratch and scratch[0].startswith("tmpfs /scratch tmpfs "), text
    assert "size=8192k" in scratch[0] and "mode=700" in scratch[0] and "noexec" in scratch[0]
    assert "root-write-refused" in text and "tmp-ok" in text and "run-ok" in text
    # the size holds: 16 MiB do not fit in 8
    size = int(text.split("scratch-bytes ")[1].split()[0])
    assert 7 << 20 <= size <= 8 << 20, text
    root = [l for l in text.splitlines() if " / " in l and l.startswith("overlay")]
    assert root and " ro," in root[0], text


def test_without_read_only_the_root_is_writable(runner):
    r = runner.run(["/bin/sh", "-c", "echo x > /rootfile && cat /rootfile"])
    assert r.returncode == 0 and r.stdout == b"x\n", r.stderr


def test_sigkilled_runtime_then_gc_leaves_no_virtiofsd(runner, shares):
    rw, _ = shares
    proc = runner.start(["/bin/sh", "-c", "echo ready; sleep 1000"], options=["-v", f"{rw}:/h"])
    wait_for_output(proc, b"ready", timeout=240)
    assert virtiofsd_for(runner.run_dir)
    proc.kill()
    proc.wait(timeout=30)
    r = subprocess.run([str(BINARY), "gc"], env=runner.env(), capture_output=True, timeout=120)
    assert r.returncode == 0, r.stderr
    deadline = time.monotonic() + 10
    while virtiofsd_for(runner.run_dir) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not virtiofsd_for(runner.run_dir)
    assert not sockets_under(runner.run_dir)
    assert not qemu_processes_for(runner.run_dir)
    assert not vfs_cgroups()


def test_restart_gets_a_new_virtiofsd(runner, shares):
    rw, _ = shares
    script = ("if [ -e /h/once ]; then echo second-boot; exit 0; fi; "
              "echo first > /h/once; exit 3")
    r = runner.run(["/bin/sh", "-c", script],
                   options=["-v", f"{rw}:/h", "--restart", "on-failure:2"])
    assert r.returncode == 0, r.stderr
    assert b"second-boot" in r.stdout
    assert (rw / "once").read_text() == "first\n"
    assert not virtiofsd_for(runner.run_dir)
    assert not vfs_cgroups()


def test_guest_user_creates_as_its_uid_and_host_modes_hold(runner, tmp_path):
    mine = tmp_path / "mine"
    theirs = tmp_path / "theirs"
    mine.mkdir()
    theirs.mkdir(mode=0o755)
    os.chown(mine, 1000, 1000)
    script = ("echo a > /m/by-app && echo made; "
              "if echo b > /t/by-app 2>/dev/null; then echo wrote-theirs; else echo denied; fi")
    r = runner.run(["/bin/sh", "-c", script],
                   options=["-u", "1000", "-v", f"{mine}:/m", "-v", f"{theirs}:/t"])
    assert r.returncode == 0, r.stderr
    assert b"made" in r.stdout and b"denied" in r.stdout, r.stdout
    st = (mine / "by-app").stat()
    assert (st.st_uid, st.st_gid) == (1000, 1000)       # the guest user's ids, as docker
    assert not (theirs / "by-app").exists()              # a root-owned 0755 directory holds
