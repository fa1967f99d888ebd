# SPDX-License-Identifier: Apache-2.0
"""Boot snapshots with Firecracker, by contract (the stand-ins of
test_firecracker_contract.py: no VM boots; see there why stand-ins).

A jailed run of a machine shape without a snapshot first boots a
Firecracker in the run's jail (id "<run id>-snap", empty drive files) to
the init's snapshot point, pauses it and has it write the snapshot, which
goes into the cache; then it, and every later run of the shape, starts a
fresh Firecracker that loads it (memory from a File, paused), re-points the
drives at its own files, resumes it and writes "go ..." on the console.
The stand-in accepts those calls only in a valid order (and validates each
body against Firecracker's schema), refuses a load on a VMM that is not
fresh and a snapshot it did not write, opens every file inside its jail,
and after the "go" plays the guest: the run's exit code is the status it
wrote into this run's control disk.

Tested: one snapshot per shape, made once and loaded by later runs (calls,
order, the cache's files linked into the jail, the go line); the restoring
jail holds nothing of another run; a second run's TAP replaces the first's
(network_overrides) and the restored guest's frames get through; a corrupt
snapshot is removed and the run boots cold; --cold-boot and --no-jail make
none; a graceful stop of a restored VM; gc after the runtime died while the
snapshot was being saved; the stand-in's own refusals of calls out of order.

Each test uses a cache of its own for snapshots (the shared cache's other
entries are linked in); the snapshot key holds the firecracker binary, here
each test's own stand-in wrapper.
"""
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import BINARY, runs
from test_firecracker_contract import SCHEMA, STANDIN_DIR, fc  # noqa: F401 (fixture)
from test_network import net_rootfs, netprobe, world  # noqa: F401 (fixtures)
from test_sec_fc_jail import cgroups, cgroups_joined, gc, processes_of, wait_for  # noqa: F401
from test_sec_netns import GUEST_PROBE, fc_in_world, wait_for_record
from test_snapshot_jail import runner  # noqa: F401 (fixture: snapshots of the test's own)

sys.path.insert(0, str(STANDIN_DIR))
import firecracker_standin  # noqa: E402


def snapshot_dirs(runner):
    d = runner.cache / "snapshots"
    return sorted(p for p in d.iterdir() if (p / "vmstate").exists()) if d.exists() else []


def processes(records):
    """The records split by Firecracker process (each starts with "start")."""
    out = []
    for r in records:
        if r["event"] == "start":
            out.append([])
        if out:
            out[-1].append(r)
    return out


def calls(records):
    return [(r["method"], r["path"]) for r in records if r["event"] == "call"]


def ident(d):
    return (d["dev"], d["ino"])


def stat_id(path):
    st = os.stat(path)
    return (st.st_dev, st.st_ino)


def vol(name):
    return ["-v", f"{name}:/v/{name}"]


def restore_calls(volumes=1):
    return [("GET", "/version"), ("PUT", "/logger"), ("PUT", "/metrics"),
            ("PUT", "/snapshot/load"), ("PATCH", "/drives/base"), ("PATCH", "/drives/control"),
            ("PATCH", "/drives/modules"),
            *[("PATCH", f"/drives/vol{i}") for i in range(volumes)], ("PATCH", "/vm")]


def check_restore(proc, snap):
    """One restoring Firecracker's records: the calls, all accepted; the
    snapshot's files are the cache's (root's, read-only links); the go line."""
    assert calls(proc) == restore_calls(), calls(proc)
    assert all(r["status"] in (200, 204) for r in proc if r["event"] == "call"), proc
    by_path = {r["path"]: r for r in proc if r["event"] == "call"}
    load = by_path["/snapshot/load"]["body"]
    assert load["mem_backend"]["backend_type"] == "File" and load["resume_vm"] is False
    assert by_path["/vm"]["body"] == {"state": "Resumed"}
    [loaded] = [r for r in proc if r["event"] == "snapshot_loaded"]
    state, mem = loaded["files"]["snapshot_path"], loaded["files"]["backend_path"]
    assert ident(state) == stat_id(snap / "vmstate") and ident(mem) == stat_id(snap / "mem")
    assert state["uid"] == mem["uid"] == 0 and state["mode"] & 0o022 == 0
    [go] = [r for r in proc if r["event"] == "go"]
    assert go["ok"], go


def test_snapshot_made_once_then_loaded(fc, runner):
    fc.cold_boot = False
    r = fc.run(vol("one"))
    assert r.returncode == 7, r.stderr
    assert b"API socket" not in r.stderr, r.stderr  # no stale error of a wait for the API
    assert not fc.violations(), fc.violations()
    [snap] = snapshot_dirs(runner)
    assert sorted(p.name for p in snap.iterdir()) == ["lock", "mem", "vmstate"]
    prepare, restored = processes(fc.records())
    # The VM that made it: configured and started like a cold boot, with
    # ctrj.snap=1, stopped at the init's point, paused, snapshotted.
    assert calls(prepare)[-3:] == [("PUT", "/actions"), ("PATCH", "/vm"),
                                   ("PUT", "/snapshot/create")]
    assert all(r["status"] in (200, 204) for r in prepare if r["event"] == "call")
    boot = next(r for r in prepare if r["event"] == "call" and r["path"] == "/boot-source")
    assert "ctrj.snap=1" in boot["body"]["boot_args"].split()
    assert any(r["event"] == "snapshot_point" for r in prepare)
    # in a jail of its own (<run id>-snap), with empty drives, as the run's uid
    run_id = fc.jailer()["args"]["id"]
    prep_start, rest_start = prepare[0], restored[0]
    assert prep_start["cwd"].endswith(f"/{run_id}-snap/root"), prep_start["cwd"]
    assert (prep_start["uid"], prep_start["gid"]) == (rest_start["uid"], rest_start["gid"])
    for rec in prepare:
        if rec["event"] == "files" and rec["path"].startswith("/drives/"):
            assert rec["files"]["path_on_host"]["nlink"] == 1, rec  # its own empty file
    check_restore(restored, snap)
    assert not any(r["event"] == "call" and r["path"] == "/actions" for r in restored)

    # A later run of the shape loads the same snapshot; nothing is made.
    fc.calls_path.write_text("")
    r = fc.run(vol("two"))
    assert r.returncode == 7, r.stderr
    assert not fc.violations(), fc.violations()
    assert snapshot_dirs(runner) == [snap]
    [restored] = processes(fc.records())
    check_restore(restored, snap)
    # Its jail, as the jailer found it: its own files and the cache's
    # snapshot, nothing of the run or the VM that made the snapshot.
    entries = {e["name"]: e for e in fc.jailer()["chroot"]["entries"]}
    assert set(entries) == {"vmlinux", "initrd.cpio", "base.img", "modules.img", "vol0.img",
                            "snapshot.state", "snapshot.mem", "run", "run/control.img",
                            "run/log.fifo", "run/metrics.fifo"}, sorted(entries)
    assert ident(entries["snapshot.state"]) == stat_id(snap / "vmstate")
    assert ident(entries["snapshot.mem"]) == stat_id(snap / "mem")
    assert ident(entries["vol0.img"]) == stat_id(fc.vols / "two.ext4")
    assert stat_id(fc.vols / "one.ext4") not in {ident(e) for e in entries.values()}
    # the drives the loaded VM reopened and was re-pointed to: this run's
    reopened = [r for r in restored if r["event"] == "files" and r["path"] == "/drives/vol0"]
    assert [ident(r["files"]["path_on_host"]) for r in reopened] == [stat_id(fc.vols / "two.ext4")]


@pytest.mark.parametrize("damage", ["state", "no-memory"])
def test_corrupt_snapshot_is_removed_and_the_run_boots_cold(fc, runner, damage):
    fc.cold_boot = False
    assert fc.run().returncode == 7
    [snap] = snapshot_dirs(runner)
    if damage == "state":
        (snap / "vmstate").write_bytes(b"not a snapshot")
    else:
        (snap / "mem").unlink()
    fc.calls_path.write_text("")
    r = fc.run()
    assert r.returncode == 7, r.stderr
    assert b"did not restore" in r.stderr and b"booting cold" in r.stderr, r.stderr
    assert not (snap / "vmstate").exists() and not (snap / "mem").exists()
    *refused, cold = processes(fc.records())
    if damage == "state":  # Firecracker refused it
        [refused] = refused
        assert calls(refused)[-1] == ("PUT", "/snapshot/load")
        assert [r["status"] for r in refused if r["event"] == "call"][-1] == 400
        assert any(r["event"] == "load_refused" for r in refused)
    else:  # found missing before any Firecracker started
        assert refused == []
    assert ("PUT", "/actions") in calls(cold) and ("PUT", "/snapshot/load") not in calls(cold)
    boot = next(r for r in cold if r["event"] == "call" and r["path"] == "/boot-source")
    assert "ctrj.snap=1" not in boot["body"]["boot_args"].split()
    assert not fc.violations(), fc.violations()
    assert fc.run().returncode == 7  # the next run makes it again
    assert (snap / "vmstate").exists() and (snap / "mem").exists()


@pytest.mark.parametrize("how", ["cold-boot", "no-jail"])
def test_cold_boot_and_no_jail_make_no_snapshot(fc, runner, how):
    fc.cold_boot = how == "cold-boot"
    r = fc.run(jail=how != "no-jail")
    assert r.returncode == 7, r.stderr
    assert not snapshot_dirs(runner)
    [proc] = processes(fc.records())
    assert ("PUT", "/actions") in calls(proc)
    assert not any(p.startswith("/snapshot") for _, p in calls(proc))


def test_graceful_stop_of_a_restored_vm(fc, runner):
    fc.cold_boot = False
    fc.configure(on_start="wait")
    proc = fc.start()
    try:
        wait_for("go", fc)  # restored, told "go"
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert [r for r in fc.calls() if r["path"] == "/actions"][-1]["body"] == \
        {"action_type": "SendCtrlAltDel"}
    assert not fc.violations(), fc.violations()


def test_restored_vm_has_this_runs_tap(fc, world):
    """Two runs with a TAP each: the second loads the snapshot the first
    made with the first's TAP, over its own (network_overrides); the
    restored guest's frames go through it to the upstream server."""
    fc.cold_boot = False
    fc.configure(on_start="wait", guest_probe=GUEST_PROBE)
    taps, probes = [], []
    for _ in range(2):
        fc.calls_path.write_text("")
        proc = fc_in_world(fc, world)
        try:
            probes.append(wait_for_record(fc, proc, "guest_probe"))
        finally:
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=60)
        assert proc.returncode == 128 + signal.SIGTERM, err
        assert not fc.violations(), fc.violations()
        restored = processes(fc.records())[-1]
        load = next(r for r in restored if r["event"] == "call" and r["path"] == "/snapshot/load")
        [tap] = [r["name"] for r in restored if r["event"] == "tap"]
        assert load["body"]["network_overrides"] == [{"iface_id": "eth0", "host_dev_name": tap}]
        taps.append(tap)
    assert taps[0] != taps[1]
    for probe in probes:
        assert probe["udp_reply"] and probe["udp_reply"].startswith("upstream-udp"), probe


def test_gc_after_the_runtime_died_while_the_snapshot_was_made(cgroups, fc, runner):
    """SIGKILL while the snapshot's VM saves: gc kills it through its
    cgroups and removes its jail; no snapshot is left half made."""
    fc.cold_boot = False
    fc.configure(jailer={"cgroups": True}, create_delay=120)
    proc = fc.start()
    try:
        wait_for("vm_state", fc)  # paused, saving
        joined = cgroups_joined(fc)
        [start] = wait_for("start", fc)
        assert fc.jail_dirs() == [f"{fc.jailer()['args']['id']}"]
        assert fc.jailer()["args"]["id"].endswith("-snap")
    finally:
        proc.kill()
        proc.communicate(timeout=30)
    assert processes_of(start["uid"]), "the snapshot's VM did not outlive its runtime"
    r = gc(fc)
    assert r.returncode == 0, r.stderr
    assert processes_of(start["uid"]) == []
    assert not fc.jail_dirs() and not runs(runner.run_dir)
    assert not any(Path(d).exists() for d in joined), joined
    assert not snapshot_dirs(runner)


def test_snapshot_prepare_refuses_firecracker(fc, runner):
    """Firecracker's snapshot VM needs a run's jail and network namespace:
    `snapshot prepare` says the first run makes it, and starts nothing."""
    r = subprocess.run([str(BINARY), "snapshot", "prepare", "--vmm", "firecracker",
                        "--chroot-base", str(fc.jail_base), "--network", "none"],
                       env=fc.env(), capture_output=True, timeout=60)
    assert r.returncode == 125, r.stderr
    assert b"made by the first run of a machine shape" in r.stderr, r.stderr
    assert not fc.records() and not snapshot_dirs(runner) and not runs(runner.run_dir)


# ---- the stand-in's model of the order (no binary runs) -----------------------

@pytest.fixture
def standin(tmp_path):
    record = tmp_path / "calls.jsonl"
    f = firecracker_standin.Firecracker({"record": str(record), "schema": str(SCHEMA)}, [])
    f.records = lambda: [json.loads(line) for line in record.read_text().splitlines()]
    return f


def test_standin_refuses_snapshot_calls_out_of_order(standin, tmp_path):
    (tmp_path / "state").write_text("{}")
    (tmp_path / "mem").write_bytes(b"")
    load = {"snapshot_path": str(tmp_path / "state"), "resume_vm": False,
            "mem_backend": {"backend_type": "File", "backend_path": str(tmp_path / "mem")}}
    assert standin.handle("PATCH", "/vm", {"state": "Paused"})[0] == 400  # nothing runs
    assert standin.handle("PUT", "/snapshot/create",
                          {"snapshot_path": str(tmp_path / "s2"),
                           "mem_file_path": str(tmp_path / "m2")})[0] == 400
    # a snapshot the stand-in did not write is refused (as a corrupt one)
    assert standin.handle("PUT", "/snapshot/load", load)[0] == 400
    assert standin.handle("PUT", "/machine-config",
                          {"vcpu_count": 1, "mem_size_mib": 128})[0] == 204
    status, answer, _ = standin.handle("PUT", "/snapshot/load", load)
    assert status == 400 and "not allowed" in answer["fault_message"]
    # unknown fields are refused by the schema
    assert standin.handle("PATCH", "/vm", {"state": "Paused", "x": 1})[0] == 400
    errors = [r["error"] for r in standin.records() if r["event"] == "violation"]
    assert any("not fresh" in e for e in errors), errors
    assert any("before the VM runs" in e for e in errors), errors
