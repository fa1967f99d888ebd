# SPDX-License-Identifier: Apache-2.0
"""Firecracker's jail and the uid of each VM, with the stand-ins of
test_firecracker_contract.py (no VM boots; see there why stand-ins).

Each jailed VM runs as a uid of its own, which the run directory records
and which the allocator hands out again once that directory is gone. So:

- a volume that several VMs attach read-only at once (they share its lock)
  must never change owner: the last run to end would otherwise "restore"
  the uid of another run, and a later VM given that uid would own the
  volume; and while both run, the first VM's access would depend on the
  second's uid;
- a VMM whose runtime died must be killed by gc wherever it was reparented
  to (a jailed Firecracker has no parent-death signal: the jailer's uid
  switch clears it), even before the runtime recorded it, and the run, with
  its uid, must stay until no process of the VM is left;
- a start that fails after the jailer forked Firecracker must kill it.

The jailer stand-in makes the VM's cgroups and joins them as the jailer
does ("cgroups" in its configuration) for the tests that need them.
"""
import json
import os
import secrets
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import BINARY, runs, recorded_ids
from test_firecracker_contract import fc, owner, mounts_under  # noqa: F401 (fixture)

VOLUME = ["-v", "one:/v/one"]


def processes_of(uid):
    """Pids of every process whose real uid is uid."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            status = (proc / "status").read_text()
        except OSError:
            continue
        line = next((l for l in status.splitlines() if l.startswith("Uid:")), "")
        if line.split()[1:2] == [str(uid)] and "State:\tZ" not in status:
            found.append(int(proc.name))
    return found


def gc(fc):
    return subprocess.run([str(BINARY), "gc"], env=fc.env(), capture_output=True, timeout=120)


def wait_for(what, fc, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [r for r in fc.records() if r["event"] == what]
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"no {what} record; records: {fc.records()}")


def cgroups_joined(fc):
    joined = fc.jailer()["cgroups"]
    if not joined:
        pytest.skip("this test's process sits in no cgroup hierarchy at its root: the jailer "
                    "stand-in cannot join the VM's cgroups")
    return joined


@pytest.fixture
def cgroups():
    """Removes the cgroups the jailer stand-in made that are left after the
    test (the parent <exec name> directories only if the test made them).
    Requested before fc, so it runs after fc has killed leftover stand-ins."""
    parents = [Path("/sys/fs/cgroup/firecracker")] + \
        [Path(d.path) / "firecracker" for d in os.scandir("/sys/fs/cgroup") if d.is_dir()]
    existed = {p for p in parents if p.exists()}
    yield
    for parent in parents:
        if not parent.exists():
            continue
        for child in parent.iterdir():
            if child.is_dir():
                try:
                    child.rmdir()
                except OSError:
                    pass
        if parent not in existed:
            try:
                parent.rmdir()
            except OSError:
                pass


@pytest.fixture
def freezer():
    """A cgroup v1 freezer of the test's own: freeze(pid) stops the process
    so that even SIGKILL cannot end it until thaw() (a VMM that takes its
    time to exit)."""
    root = Path("/sys/fs/cgroup/freezer")
    if not (root / "freezer.state").exists() and not (root / "cgroup.procs").exists():
        pytest.skip("no cgroup v1 freezer here")
    group = root / f"ctrj-test-{secrets.token_hex(4)}"
    group.mkdir()

    class Freezer:
        def freeze(self, pid):
            (group / "cgroup.procs").write_text(str(pid))
            (group / "freezer.state").write_text("FROZEN")
            deadline = time.monotonic() + 10
            while (group / "freezer.state").read_text().strip() != "FROZEN":
                assert time.monotonic() < deadline
                time.sleep(0.05)

        def thaw(self):
            (group / "freezer.state").write_text("THAWED")

    f = Freezer()
    yield f
    f.thaw()
    for pid in (group / "cgroup.procs").read_text().split():
        try:
            os.kill(int(pid), signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 10
    while (group / "cgroup.procs").read_text().split() and time.monotonic() < deadline:
        time.sleep(0.05)
    group.rmdir()


# ---- a read-only volume shared by two VMs --------------------------------------

def test_shared_read_only_volume_keeps_its_owner(fc, runner):
    """Two VMs attach one volume read-only at the same time, each with a
    uid of its own. The host file keeps its owner throughout, whichever run
    ends first, while each VMM opens it as its own uid."""
    r = fc.run(["-v", "shared:/s"])  # creates the volume
    assert r.returncode == 7, r.stderr
    (vol,) = fc.vols.iterdir()
    before = owner(vol)
    assert before == (0, 0, 0o600)
    fc.configure(on_start="wait")
    a = fc.start(["-v", "shared:/s:ro"])
    b = None
    try:
        fc.wait_for_call("/actions", "InstanceStart")
        b = fc.start(["-v", "shared:/s:ro"])
        deadline = time.monotonic() + 60
        while sum(1 for c in fc.calls() if c["body"] == {"action_type": "InstanceStart"}) < 2:
            assert time.monotonic() < deadline and b.poll() is None, fc.records()[-3:]
            time.sleep(0.05)
        both_running = owner(vol)
        a.send_signal(signal.SIGTERM)
        _, a_err = a.communicate(timeout=60)
        after_first = owner(vol)
        b.send_signal(signal.SIGTERM)
        _, b_err = b.communicate(timeout=60)
    finally:
        for p in (a, b):
            if p and p.poll() is None:
                p.kill()
                p.communicate()
    assert a.returncode == b.returncode == 128 + signal.SIGTERM, (a_err, b_err)
    assert (both_running, after_first, owner(vol)) == (before, before, before)
    # Each VMM opened the volume read-only, and saw it as its own uid's: the
    # host file was never given to either.
    uids = [s["uid"] for s in fc.records() if s["event"] == "start"]
    seen = [r["files"]["path_on_host"] for r in fc.records()
            if r["event"] == "files" and r["path"] == "/drives/vol0"]
    assert len(set(uids)) == 2, uids
    assert [(f["uid"], f["gid"]) for f in seen] == [(u, u) for u in uids], seen
    assert not fc.violations()
    assert not mounts_under(fc.work)
    assert not fc.jail_dirs() and not runs(runner.run_dir)


def test_read_only_volume_without_idmapped_mounts_is_refused(fc, runner, tmp_path):
    """Where the volume's filesystem has no idmapped mounts (overlayfs
    here), a read-only attach the VMM's uid could not read is refused with
    one clear line, and the volume keeps its owner. Runs in a private mount
    namespace."""
    r = fc.run(["-v", "shared:/s"])
    assert r.returncode == 7, r.stderr
    ovl = tmp_path / "ovl"
    for d in ("upper", "work", "merged"):
        (ovl / d).mkdir(parents=True)
    script = f"""
set -e
mount -t overlay ctrj-test -o lowerdir={fc.vols},upperdir={ovl}/upper,workdir={ovl}/work {ovl}/merged
rc=0
"$@" || rc=$?
echo "owner $(stat -c '%u %g %a' {ovl}/merged/shared.ext4)"
exit $rc
"""
    argv = fc.argv(["-v", "shared:/s:ro"])
    argv[argv.index("--volumes-dir") + 1] = str(ovl / "merged")
    r = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script,
                        "sh", *argv], env=fc.env(), capture_output=True, timeout=120)
    assert r.returncode == 125, (r.stdout, r.stderr)
    lines = [l for l in r.stderr.decode().splitlines() if "KVM" not in l]
    assert len(lines) == 1 and "without idmapped mounts" in lines[0], lines
    assert b"owner 0 0 600" in r.stdout, r.stdout
    assert owner(fc.vols / "shared.ext4") == (0, 0, 0o600)
    assert not fc.jail_dirs() and not runs(runner.run_dir)


# ---- a VMM its runtime left behind ------------------------------------------------

def start_and_kill_runtime(fc, runner):
    """A jailed VM whose Firecracker is slow to serve its API, and whose
    runtime is SIGKILLed meanwhile: before it wrote the run's `vmm` record.
    Returns the run directory, the VM's uid and the cgroups it is in."""
    fc.configure(jailer={"cgroups": True}, on_start="wait", api_delay=120)
    proc = fc.start(VOLUME)
    try:
        (start,) = wait_for("start", fc)
        joined = cgroups_joined(fc)
        (run,) = runs(runner.run_dir)
    finally:
        proc.kill()
        proc.communicate(timeout=30)
    uid = start["uid"]
    assert uid == recorded_ids(run)[0]
    # the runtime died before recording the VMM
    assert "vmm" not in json.loads((run / "record.json").read_text())
    assert processes_of(uid), "the stand-in firecracker did not outlive its runtime"
    return run, uid, joined


def test_gc_kills_a_vmm_its_runtime_never_recorded(cgroups, fc, runner):
    run, uid, joined = start_and_kill_runtime(fc, runner)
    r = gc(fc)
    assert r.returncode == 0, r.stderr
    # Killed through its cgroups, and gone before the run (its uid) was freed.
    assert processes_of(uid) == []
    assert not run.exists() and not fc.jail_dirs()
    assert not any(Path(d).exists() for d in joined), joined
    assert owner(next(fc.vols.iterdir())) == (0, 0, 0o600)  # the writable volume's owner back


def test_gc_keeps_the_uid_while_a_process_of_the_vm_lives(cgroups, freezer, fc, runner):
    """A VMM that does not end at once (frozen here, so SIGKILL waits): gc
    keeps the run directory, which records the uid, and the jail until it
    has ended; the next gc finishes."""
    run, uid, joined = start_and_kill_runtime(fc, runner)
    (pid,) = processes_of(uid)
    freezer.freeze(pid)
    r = gc(fc)
    assert r.returncode == 0, r.stderr
    assert processes_of(uid) == [pid]
    assert recorded_ids(run)[0] == uid, "the uid was freed"
    assert fc.jail_dirs(), "the jail was undone under a live VMM"
    assert owner(next(fc.vols.iterdir()))[0] == uid
    assert b"does not end" in r.stderr, r.stderr
    freezer.thaw()
    r = gc(fc)
    assert r.returncode == 0, r.stderr
    assert processes_of(uid) == []
    assert not run.exists() and not fc.jail_dirs()
    assert owner(next(fc.vols.iterdir())) == (0, 0, 0o600)


@pytest.mark.parametrize("after_fork", [{"exit": 1}, {"pid_file": "0"}],
                         ids=["jailer-fails", "bad-pid-file"])
def test_failed_jailed_start_kills_what_the_jailer_started(cgroups, fc, runner, after_fork):
    """The jailer forked Firecracker, then failed or left a pid file that
    names no child of ours: the run fails with one clear line and leaves no
    process of the VM's uid behind."""
    fc.configure(jailer={"cgroups": True, "after_fork": after_fork}, on_start="wait",
                 api_delay=120)
    r = fc.run(VOLUME)
    joined = cgroups_joined(fc)
    uid = int(fc.jailer()["args"]["uid"])
    assert processes_of(uid) == []
    assert r.returncode == 125, r.stderr
    lines = [l for l in r.stderr.decode().splitlines() if "KVM" not in l]
    assert len(lines) == 1 and "jailer" in lines[0], lines
    assert not fc.jail_dirs() and not runs(runner.run_dir)
    assert not any(Path(d).exists() for d in joined), joined
    assert owner(next(fc.vols.iterdir())) == (0, 0, 0o600)
