# SPDX-License-Identifier: Apache-2.0
"""The Firecracker backend, tested by contract.

Firecracker cannot be installed on the machines this project is built and
tested on (no registry ships it, and their KVM is PVM, which cannot run a
stock guest), so these tests run the real `ctr-jailer run --vmm firecracker`
against stand-ins for `firecracker` and `jailer` (tests/integration/
fc_standin/). They are the only stand-ins this project uses, and only for
that reason: every other test boots a real VM under QEMU.

The firecracker stand-in serves Firecracker's REST API on the --api-sock
socket, validates each request body against Firecracker's published
OpenAPI document (../shared/firecracker/firecracker.yaml, unknown fields
refused), enforces the call order, opens the files it is given with the
access Firecracker needs, answers 204 / 200 / 400 {"fault_message"} as
Firecracker does, records every call, and ends the "VM" like a guest that
rebooted: a status record in the control disk, exit 0. The jailer stand-in
records its argv, inspects the chroot it is handed, does to it what the
jailer does (copy, chown, device nodes, rlimits, a new pid namespace, the
pid file), insists on --netns and joins that namespace, and runs the
firecracker stand-in as the jail user with the jail root as its working
directory. The network namespace with a TAP is tested in test_sec_netns.py.

What is tested here: the request bodies and their order, the jailer's
command line and the jail's layout and ownership, the drives (base,
control, modules, three volumes), limits set and unset, the graceful stop
(SendCtrlAltDel), a 400 turned into one clear error with full teardown, the
version floor, the bind-mount fallback across filesystems, gc after a
SIGKILLed run, a uid of its own per VM, a session of their own with no
terminal fd and no environment for the jailer and Firecracker, an API
socket swapped by a compromised Firecracker (symlink, or another process's
socket) receiving no request, and `exec` through the vsock device: the
CONNECT/OK handshake on its socket in the jail, retried while the guest
boots, to a fake guest agent, and a one-line failure, never a hang, when
the vsock answers garbage, closes or stays silent. What is not: a real Firecracker booting the guest, its
seccomp filters, its real cgroup writes.
"""
import json
import os
import signal
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from conftest import BINARY, BUILD, REPO, DecoySocket, OnTerminal, recorded_ids, runs, settled
from test_exec import ctrj_exec, wait_for_agent

STANDIN_DIR = REPO / "tests/integration/fc_standin"
SCHEMA = Path(os.environ.get("CTRJ_FC_SCHEMA", REPO.parent / "shared/firecracker/firecracker.yaml"))
if not SCHEMA.is_file() and not os.environ.get("CI"):
    # Firecracker's OpenAPI document is not part of this project: set
    # CTRJ_FC_SCHEMA to a copy of firecracker.yaml (src/firecracker/swagger in
    # Firecracker's repository). In CI its absence is a failure, not a skip.
    pytest.skip(f"Firecracker's API schema not found at {SCHEMA}: set CTRJ_FC_SCHEMA",
                allow_module_level=True)
sys.path.insert(0, str(STANDIN_DIR))
import firecracker_standin  # noqa: E402

# The default --jail-uid-range: each VM's jailer gets a uid (= gid) of its own.
UID_START, UID_COUNT = 2000000000, 65536
CGROUP_VERSION = "2" if os.path.exists("/sys/fs/cgroup/cgroup.controllers") else "1"

WRAPPER = """#!/usr/bin/python3
import json, sys
sys.dont_write_bytecode = True
sys.path.insert(0, {dir!r})
import {module}
sys.exit({module}.main(sys.argv[1:], json.loads({config!r})))
"""


def in_range(uid, gid):
    return uid == gid and UID_START <= uid < UID_START + UID_COUNT


def jail_ids(fc):
    """The run's own uid and gid, as the jailer was told them: one number,
    from the default range."""
    args = fc.jailer()["args"]
    uid, gid = int(args["uid"]), int(args["gid"])
    assert in_range(uid, gid), (uid, gid)
    return uid, gid


class FC:
    """One test's stand-ins, work directory and helpers."""

    def __init__(self, runner, tmp_path):
        self.runner = runner
        # World-traversable (the jailed stand-in runs as the jail user) and
        # short (unix socket paths are limited to 108 bytes).
        self.work = Path(tempfile.mkdtemp(prefix="cjfc-", dir="/tmp"))
        self.work.chmod(0o755)
        self.bin = self.work / "bin"
        self.bin.mkdir(mode=0o755)
        self.calls_path = self.work / "calls.jsonl"
        self.jailer_path = self.work / "jailer.json"
        self.jail_base = self.work / "jail"
        self.vols = tmp_path / "vols"
        # Boot snapshots are test_fc_snapshot.py's: these runs boot cold.
        self.cold_boot = True
        self.configure()

    def configure(self, jailer=None, **config):
        """config: the firecracker stand-in's; jailer: the jailer stand-in's."""
        self.calls_path.write_text("")
        self.calls_path.chmod(0o666)
        fc_config = {"record": str(self.calls_path), "schema": str(SCHEMA), "on_start": {"exit": 7},
                     **config}
        for name, module, cfg in (
                ("firecracker", "firecracker_standin", fc_config),
                ("jailer", "jailer_standin", {"record": str(self.jailer_path), **(jailer or {})})):
            path = self.bin / name
            path.write_text(WRAPPER.format(dir=str(STANDIN_DIR), module=module,
                                           config=json.dumps(cfg)))
            path.chmod(0o755)

    def env(self, extra=None):
        return self.runner.env({"FIRECRACKER_BIN": str(self.bin / "firecracker"),
                                "JAILER_BIN": str(self.bin / "jailer"), **(extra or {})})

    def argv(self, options=(), jail=True, args=("/bin/true",)):
        opts = ["--vmm", "firecracker", "--chroot-base", str(self.jail_base),
                "--volumes-dir", str(self.vols), *options]
        if self.cold_boot:
            opts.append("--cold-boot")
        if not jail:
            opts.append("--no-jail")
        return self.runner.argv(list(args), options=opts)

    def run(self, options=(), jail=True, timeout=120):
        return subprocess.run(self.argv(options, jail), env=self.env(), capture_output=True,
                              timeout=timeout)

    def start(self, options=(), jail=True):
        return subprocess.Popen(self.argv(options, jail), env=self.env(), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)

    def records(self):
        return [json.loads(line) for line in self.calls_path.read_text().splitlines() if line]

    def calls(self):
        return [r for r in self.records() if r["event"] == "call"]

    def files(self):
        """path -> {field: stat of the file the stand-in opened}"""
        return {r["path"]: r["files"] for r in self.records() if r["event"] == "files"}

    def violations(self):
        return [r for r in self.records() if r["event"] == "violation"]

    def jailer(self):
        return json.loads(self.jailer_path.read_text())

    def wait_for_call(self, path, action=None, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for c in self.calls():
                if c["path"] == path and (action is None or c["body"]["action_type"] == action):
                    return c
            time.sleep(0.05)
        raise AssertionError(f"no {path} {action} call; records: {self.records()}")

    def jail_dirs(self):
        d = self.jail_base / "firecracker"
        return sorted(p.name for p in d.iterdir()) if d.exists() else []

    def processes(self):
        """Stand-in processes still alive (cwd in our jail base or run dir,
        or our wrappers on their command line)."""
        found = []
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit() or int(proc.name) == os.getpid():
                continue
            try:
                cmd = (proc / "cmdline").read_bytes()
                cwd = os.readlink(proc / "cwd")
            except OSError:
                continue
            if str(self.work).encode() in cmd or cwd.startswith(str(self.work)) or \
                    cwd.startswith(str(self.runner.run_dir)):
                found.append(int(proc.name))
        return found


@pytest.fixture
def fc(runner, tmp_path):
    f = FC(runner, tmp_path)
    yield f
    # (a run's TAP ends in a process of ctr-jailer's own a few ms after the
    # run: net/netlink.c, cj_tap_end_detached)
    procs = settled(f.processes, [], 2)
    for pid in procs:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    leftovers = f.jail_dirs()
    if leftovers:  # clean up anyway (gc), then fail
        subprocess.run([str(BINARY), "gc"], env=f.env(), capture_output=True)
    for mp in reversed(mounts_under(f.work)):
        subprocess.run(["umount", "-l", mp], check=False)
    subprocess.run(["rm", "-rf", "--one-file-system", str(f.work)], check=False)
    assert not procs, f"stand-in processes left running: {procs}"
    assert not leftovers, f"jails left behind: {leftovers}"


def mounts_under(path):
    with open("/proc/self/mountinfo") as f:
        mps = [line.split()[4] for line in f]
    return sorted(m for m in mps if m.startswith(str(path) + "/"))


def error_lines(stderr: bytes):
    """stderr without the notices every run here prints (KVM, --no-jail)."""
    return [l for l in stderr.decode().splitlines()
            if "Firecracker needs KVM" not in l and "--no-jail" not in l]


def owner(path):
    st = os.stat(path)
    return st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)


VOLUMES = ["-v", "one:/v/one", "-v", "two:/v/two", "-v", "three:/v/three"]


def inodes(*dirs):
    out = set()
    for d in dirs:
        for p in Path(d).iterdir():
            st = p.stat()
            out.add((st.st_dev, st.st_ino))
    return out


@pytest.mark.parametrize("jail", [True, False], ids=["jail", "no-jail"])
def test_requests_order_and_drives(fc, runner, jail):
    fc.configure(on_start={"exit": 7}, log_lines=["2024-01-01T00:00:00 [standin:WARN] hello from the logger"])
    r = fc.run(VOLUMES, jail=jail)
    # The stand-in wrote "exited 7" into the control disk and exited 0:
    # the workload's status reached ctr-jailer through the control disk.
    assert r.returncode == 7, r.stderr
    assert b"firecracker: 2024-01-01T00:00:00 [standin:WARN] hello from the logger" in r.stderr
    assert not fc.violations(), fc.violations()
    calls = fc.calls()
    assert all(c["status"] in (200, 204) for c in calls), calls
    assert all(c["content_type"] == "application/json" for c in calls if c["method"] == "PUT")
    order = [(c["method"], c["path"]) for c in calls]
    assert order == [
        ("GET", "/version"), ("PUT", "/logger"), ("PUT", "/metrics"), ("PUT", "/machine-config"),
        ("PUT", "/boot-source"), ("PUT", "/drives/base"), ("PUT", "/drives/control"),
        ("PUT", "/drives/modules"), ("PUT", "/drives/vol0"), ("PUT", "/drives/vol1"),
        ("PUT", "/drives/vol2"), ("PUT", "/vsock"), ("PUT", "/entropy"), ("PUT", "/actions")]
    body = {c["path"]: c["body"] for c in calls}
    assert body["/actions"] == {"action_type": "InstanceStart"}
    assert body["/machine-config"] == {"vcpu_count": 1, "mem_size_mib": 256, "smt": False}
    assert body["/logger"]["level"] == "Warning"
    assert body["/entropy"] == {}
    args = body["/boot-source"]["boot_args"].split()
    for needed in ("console=ttyS0", "reboot=k", "panic=1", "pci=off"):
        assert needed in args, args
    assert not any(a.startswith("tsc_early_khz") for a in args)  # KVM, not TCG
    drives = {p.split("/")[-1]: b for p, b in body.items() if p.startswith("/drives/")}
    for name, b in drives.items():
        assert b["drive_id"] == name and b["is_root_device"] is False
    for ro in ("base", "modules"):
        assert drives[ro]["is_read_only"] is True and "cache_type" not in drives[ro]
    for rw in ("control", "vol0", "vol1", "vol2"):
        assert drives[rw]["is_read_only"] is False and drives[rw]["cache_type"] == "Writeback"
    files = fc.files()
    kernel = files["/boot-source"]["kernel_image_path"]
    assert (kernel["dev"], kernel["ino"]) in inodes(runner.cache / "vmlinux")
    base = files["/drives/base"]["path_on_host"]
    assert (base["dev"], base["ino"]) in inodes(runner.cache / "base")
    vols = {(v.stat().st_dev, v.stat().st_ino) for v in fc.vols.iterdir()}
    assert {(files[f"/drives/vol{i}"]["path_on_host"]["dev"],
             files[f"/drives/vol{i}"]["path_on_host"]["ino"]) for i in range(3)} == vols
    start = next(r for r in fc.records() if r["event"] == "start")
    paths = [body["/boot-source"]["kernel_image_path"], body["/boot-source"]["initrd_path"],
             body["/logger"]["log_path"], body["/metrics"]["metrics_path"],
             *(b["path_on_host"] for b in drives.values())]
    if jail:
        # Jail-relative paths; the stand-in ran as the jail user in the jail.
        assert all(not p.startswith("/") for p in paths), paths
        assert drives["control"]["path_on_host"] == "run/control.img"
        uid, gid = jail_ids(fc)
        assert (start["uid"], start["gid"], start["groups"]) == (uid, gid, [])
        for i in range(3):
            f = files[f"/drives/vol{i}"]["path_on_host"]
            assert (f["uid"], f["gid"]) == (uid, gid)
        control = files["/drives/control"]["path_on_host"]
        assert (control["uid"], control["gid"], stat.S_IMODE(control["mode"])) == (uid, gid, 0o600)
        assert control["dev"] != kernel["dev"]  # on the jail's tmpfs, not on disk
        # Shared cache files keep their owner: the VMM cannot change them.
        assert (kernel["uid"], base["uid"]) == (0, 0)
    else:
        assert all(p.startswith("/") for p in paths), paths
        assert drives["control"]["path_on_host"].startswith("/proc/self/fd/")
        assert start["uid"] == 0
    # Firecracker gets no environment from ctr-jailer (it carries the workload's).
    assert set(start["env"]) <= {"STANDIN_JAILED", "LC_CTYPE"}, start["env"]  # LC_CTYPE: Python's own
    # After the run: volumes back to their owner, nothing left.
    for v in fc.vols.iterdir():
        assert owner(v) == (0, 0, 0o600), v
    assert not fc.jail_dirs()


def test_jailer_command_line_and_chroot(fc, runner):
    r = fc.run(VOLUMES)
    assert r.returncode == 7, r.stderr
    j = fc.jailer()
    assert not j["problems"], j["problems"]
    uid, gid = jail_ids(fc)
    run_id = j["args"]["id"]
    fc_real = os.path.realpath(fc.bin / "firecracker")
    # SOURCE.md: jailer --id ID --exec-file FC --uid U --gid G
    # [--cgroup-version 2] [--cgroup file=value]... [--chroot-base-dir DIR]
    # [--netns PATH] [--resource-limit ...] [--new-pid-ns] -- <firecracker args>
    assert j["argv"] == [
        "--id", run_id, "--exec-file", fc_real, "--uid", str(uid), "--gid", str(gid),
        "--cgroup-version", CGROUP_VERSION, "--chroot-base-dir", str(fc.jail_base),
        "--new-pid-ns", "--netns", f"{runner.run_dir}/{run_id}/netns",
        *cgroup_args(memory=(256 + 256) << 20, pids=512),
        # the largest file the VMM may write: its largest writable drive
        "--resource-limit", f"fsize={max(v.stat().st_size for v in fc.vols.iterdir())}",
        "--", "--api-sock", "/run/firecracker.socket"]
    assert j["root"] == f"{fc.jail_base}/firecracker/{run_id}/root"
    # Without a network, Firecracker's namespace of its own is empty: no
    # uplink, no other VM's TAP, no loopback service of the host.
    assert j["netns"]["is_netns"] and not j["netns"]["is_runtime_ns"], j["netns"]
    assert j["netns"]["links"] == [{"name": "lo", "kind": "loopback", "peer_elsewhere": False}]
    entries = {e["name"]: e for e in j["chroot"]["entries"]}
    assert j["chroot"]["run_is_mount"]
    assert set(entries) == {"vmlinux", "initrd.cpio", "base.img", "modules.img", "vol0.img",
                            "vol1.img", "vol2.img", "run", "run/control.img", "run/log.fifo",
                            "run/metrics.fifo"}, sorted(entries)
    for name in ("vmlinux", "initrd.cpio", "base.img", "modules.img"):
        # hard links to the (world-readable, root-owned) cache
        e = entries[name]
        assert e["type"] == "file" and e["nlink"] >= 2 and e["uid"] == 0, e
        assert e["mode"] & stat.S_IROTH
    for i in range(3):
        e = entries[f"vol{i}.img"]
        assert e["type"] == "file" and e["nlink"] == 2 and (e["uid"], e["gid"]) == (uid, gid), e
    for name in ("run", "run/control.img", "run/log.fifo", "run/metrics.fifo"):
        assert (entries[name]["uid"], entries[name]["gid"]) == (uid, gid), entries[name]
    assert entries["run/log.fifo"]["type"] == "fifo"
    # The firecracker stand-in: exec'd by the jailer from the jail, with the
    # jailer's arguments first, the API socket inside the jail.
    start = next(r for r in fc.records() if r["event"] == "start")
    assert start["argv"][:2] == ["--id", run_id]
    assert start["argv"][-2:] == ["--api-sock", "/run/firecracker.socket"]
    assert start["cwd"] == j["root"]
    assert start["pid"] != j["pid"]  # forked into its own pid namespace
    # Everything removed: jail, run directory; the volumes' owner restored.
    assert not (fc.jail_base / "firecracker" / run_id).exists()
    assert not runs(runner.run_dir)
    for v in fc.vols.iterdir():
        assert owner(v) == (0, 0, 0o600)


def cgroup_args(cpu_quota=None, memory=None, pids=None):
    out = []
    if cpu_quota:
        if CGROUP_VERSION == "2":
            out += ["--cgroup", f"cpu.max={cpu_quota} 100000"]
        else:
            out += ["--cgroup", "cpu.cfs_period_us=100000", "--cgroup",
                    f"cpu.cfs_quota_us={cpu_quota}"]
    if memory:
        key = "memory.max" if CGROUP_VERSION == "2" else "memory.limit_in_bytes"
        out += ["--cgroup", f"{key}={memory}"]
    if pids:
        out += ["--cgroup", f"pids.max={pids}"]
    return out


def test_limits_set_reach_the_jailer(fc):
    r = fc.run(["--cpu-quota", "1.5", "--memory-limit", "1G", "--pids-limit", "100",
                "--jail-user", "4242:4343"])
    assert r.returncode == 7, r.stderr
    j = fc.jailer()
    argv = j["argv"]
    assert argv[argv.index("--uid") + 1] == "4242" and argv[argv.index("--gid") + 1] == "4343"
    cg = argv[argv.index("--netns") + 2:argv.index("--resource-limit")]
    assert cg == cgroup_args(cpu_quota=150000, memory=1 << 30, pids=100)
    start = next(r for r in fc.records() if r["event"] == "start")
    assert (start["uid"], start["gid"]) == (4242, 4343)


def test_no_jail_has_no_jailer_and_no_limits(fc):
    r = fc.run(["--cpu-quota", "1.5"], jail=False)
    assert r.returncode == 7, r.stderr
    assert not fc.jailer_path.exists()
    start = next(r for r in fc.records() if r["event"] == "start")
    assert start["argv"][:2] == ["--api-sock", "firecracker.sock"]


@pytest.mark.parametrize("jail", [True, False], ids=["jail", "no-jail"])
def test_graceful_stop_sends_ctrl_alt_del(fc, runner, jail):
    fc.configure(on_start="wait")
    proc = fc.start(VOLUMES[:2], jail=jail)
    try:
        fc.wait_for_call("/actions", "InstanceStart")
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    # The stand-in answered SendCtrlAltDel like a guest whose workload died
    # of SIGTERM: status "signaled 15" in the control disk, then reboot.
    assert proc.returncode == 128 + signal.SIGTERM, err
    calls = fc.calls()
    start = next(i for i, c in enumerate(calls) if c["body"] == {"action_type": "InstanceStart"})
    after = calls[start + 1:]
    assert [(c["method"], c["path"], c["body"]) for c in after] == [
        ("PUT", "/actions", {"action_type": "SendCtrlAltDel"})]
    assert not fc.violations()
    assert not fc.jail_dirs()
    assert not runs(runner.run_dir)


def test_vmms_get_own_uid_session_and_no_environment(fc, runner):
    """Two VMs at once, one started from a terminal with a secret in the
    runtime's environment: each jailer and Firecracker runs in a session of
    its own, with no fd of that terminal, no environment from ctr-jailer,
    and as a uid of its own, recorded in the run directory."""
    secret = "s3cr3t-" + os.urandom(6).hex()
    fc.configure(on_start="wait")
    argv = fc.argv(["--secret", "token=env:CJ_TEST_SECRET"])
    env = fc.env({"CJ_TEST_SECRET": secret})
    term = OnTerminal(argv, env)
    other = None
    try:
        fc.wait_for_call("/actions", "InstanceStart")
        jailer = fc.jailer()  # the first run's jailer, before the second overwrites it
        other = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while sum(1 for c in fc.calls() if c["body"] == {"action_type": "InstanceStart"}) < 2:
            assert time.monotonic() < deadline and other.poll() is None, fc.records()
            time.sleep(0.05)
        recorded = {}
        for run in runs(runner.run_dir):
            recorded[run.name] = recorded_ids(run)
        starts = [r for r in fc.records() if r["event"] == "start"]
    finally:
        term.proc.send_signal(signal.SIGTERM)
        if other:
            other.send_signal(signal.SIGTERM)
            other.communicate(timeout=60)
        rc = term.wait(timeout=60)
        injected = term.injected()
        term.close()
    assert rc == other.returncode == 128 + signal.SIGTERM, bytes(term.out)
    assert len(starts) == 2 and len(recorded) == 2
    # Not the caller's session (ctr-jailer leads it), nor any fd of its
    # terminal. (Firecracker, in a pid namespace of its own, sees the
    # session's leader as 0 either way: the jailer's session is the check.)
    assert jailer["sid"] == jailer["pid"] != term.proc.pid, jailer
    for who in (jailer, *starts):
        assert who["sid"] != term.proc.pid, who
        assert not any(t and t.startswith("/dev/pts") for t in who["stdio"]), who["stdio"]
        assert who["stdio"][0] == "/dev/null", who["stdio"]
    assert injected == b""
    # No environment: in particular not the secret.
    assert jailer["env"] == {}, jailer["env"]
    for r in starts:
        assert set(r["env"]) <= {"STANDIN_JAILED", "LC_CTYPE"}, r["env"]
    assert secret.encode() not in fc.calls_path.read_bytes() + fc.jailer_path.read_bytes()
    # A uid (= gid) of its own per VM, from the range, as recorded.
    uids = [(r["uid"], r["gid"]) for r in starts]
    assert len(set(uids)) == 2, f"both VMMs run as {uids[0]}"
    assert all(in_range(*i) for i in uids), uids
    assert set(recorded.values()) == set(uids), recorded
    assert not fc.jail_dirs() and not runs(runner.run_dir)


@pytest.fixture
def decoy():
    with DecoySocket() as d:
        yield d


@pytest.mark.parametrize("how", ["symlink", "socket"])
def test_api_socket_hijack_refused(fc, runner, decoy, how):
    """A compromised Firecracker replaces its API socket (in run/, which it
    owns) with a symlink to another socket, or with a socket a process of
    its own uid serves: the graceful stop must send nothing to either. The
    VM is killed instead."""
    fc.configure(on_start="wait",
                 hijack={"symlink": str(decoy.path)} if how == "symlink" else "socket")
    proc = fc.start(VOLUMES[:2])
    try:
        fc.wait_for_call("/actions", "InstanceStart")
        deadline = time.monotonic() + 30
        while not any(r["event"] == "hijack" for r in fc.records()):
            assert time.monotonic() < deadline, fc.records()
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    time.sleep(0.5)
    hijacked = [r for r in fc.records() if r["event"] == "hijacked"]
    assert decoy.received == [], f"root connected to the decoy socket: {decoy.received}"
    assert all(h["received"] == "" for h in hijacked), f"the impostor got a request: {hijacked}"
    assert proc.returncode == 128 + signal.SIGKILL, err
    assert b"refusing" in err, err
    assert [c["body"] for c in fc.calls()][-1] == {"action_type": "InstanceStart"}
    assert not fc.jail_dirs()
    assert not runs(runner.run_dir)
    for v in fc.vols.iterdir():
        assert owner(v) == (0, 0, 0o600)


@pytest.mark.parametrize("jail", [True, False], ids=["jail", "no-jail"])
def test_fault_message_is_the_error(fc, runner, jail):
    fault = "Unable to create the block device: BackingFile(Os { code: 13, kind: PermissionDenied })"
    fc.configure(fail={"path": "/drives/vol1", "fault_message": fault})
    r = fc.run(VOLUMES, jail=jail)
    assert r.returncode == 125, r.stderr
    lines = error_lines(r.stderr)
    assert len(lines) == 1, lines
    assert "drive vol1" in lines[0] and fault in lines[0], lines[0]
    # Nothing after the refusal, no InstanceStart; everything torn down.
    assert fc.calls()[-1]["path"] == "/drives/vol1"
    assert not fc.processes()
    assert not fc.jail_dirs()
    assert not runs(runner.run_dir)
    for v in fc.vols.iterdir():
        assert owner(v) == (0, 0, 0o600)


def test_old_firecracker_is_refused(fc, runner):
    fc.configure(version="1.7.0")
    r = fc.run()
    assert r.returncode == 125, r.stderr
    lines = error_lines(r.stderr)
    assert len(lines) == 1 and "Firecracker 1.7.0 is too old" in lines[0], lines
    assert "1.8.0" in lines[0]
    assert [c["path"] for c in fc.calls()] == ["/version"]
    assert not fc.jail_dirs()


def test_firecracker_refuses_tcg(fc):
    r = fc.run(["--accel", "tcg"])
    assert r.returncode == 125
    assert "KVM only" in r.stderr.decode()
    assert not fc.calls_path.read_text()


def test_auto_says_which_vmm(fc, runner, tmp_path):
    """auto: Firecracker only where KVM can run a guest; here (PVM, or no
    /dev/kvm) it picks QEMU and says why, in one line."""
    kvm_usable = subprocess.run(["test", "-e", "/sys/module/kvm_pvm"]).returncode != 0 and \
        os.access("/dev/kvm", os.R_OK | os.W_OK)
    argv = [str(BINARY), "run", "--vmm", "auto", "--rootfs", str(tmp_path / "missing"), "--",
            "/bin/true"]
    r = subprocess.run(argv, env=fc.env(), capture_output=True, timeout=60)
    assert r.returncode == 125
    lines = r.stderr.decode().splitlines()
    if kvm_usable:
        assert lines[0].startswith("ctr-jailer: using Firecracker"), lines
    else:
        assert "Firecracker needs KVM: using QEMU" in lines[0], lines
    assert len(lines) == 2, lines  # the choice, then the missing rootfs


def test_jail_across_filesystems_binds(fc, runner):
    """A jail base on another filesystem: no hard links possible, files are
    bind-mounted (a copy of a multi-GB base image per start is not an
    option), and unmounted again. Runs in a private mount namespace."""
    script = f"""
set -e
mount -t tmpfs ctrj-test-jail {fc.jail_base}
rc=0
"$@" || rc=$?
echo "mounts-left $(grep -c ' {fc.jail_base}/' /proc/self/mountinfo || true)"
echo "jails-left $(ls -A {fc.jail_base}/firecracker | wc -l)"
exit $rc
"""
    fc.jail_base.mkdir()
    r = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script,
                        "sh", *fc.argv(VOLUMES[:2])], env=fc.env(), capture_output=True,
                       timeout=120)
    assert r.returncode == 7, r.stderr
    assert b"mounts-left 0" in r.stdout and b"jails-left 0" in r.stdout, r.stdout
    j = fc.jailer()
    assert not j["problems"]
    entries = {e["name"]: e for e in j["chroot"]["entries"]}
    files = fc.files()
    for name, path in (("vmlinux", "/boot-source"), ("base.img", "/drives/base"),
                       ("vol0.img", "/drives/vol0")):
        # same inode as the host file, on the host file's device: a bind mount
        e = entries[name]
        f = files[path]["kernel_image_path" if name == "vmlinux" else "path_on_host"]
        assert (e["dev"], e["ino"]) == (f["dev"], f["ino"])
        assert e["dev"] != j["chroot"]["root"]["dev"]
    for v in fc.vols.iterdir():
        assert owner(v) == (0, 0, 0o600)


def test_gc_after_sigkill(fc, runner):
    fc.configure(on_start="wait")
    proc = fc.start(VOLUMES[:2])
    fc.wait_for_call("/actions", "InstanceStart")
    # The run's uid, as its run record holds it (gc frees it).
    (run,) = runs(runner.run_dir)
    uid, gid = recorded_ids(run)
    assert in_range(uid, gid) and uid == jail_ids(fc)[0]
    proc.kill()
    proc.wait(timeout=30)
    proc.stdout.close()
    proc.stderr.close()
    standins = fc.processes()
    assert standins, "the VMM outlived ctr-jailer (the jailer's uid switch drops PDEATHSIG)"
    assert fc.jail_dirs()
    assert owner(next(fc.vols.iterdir()))[0] == uid
    r = subprocess.run([str(BINARY), "gc"], env=fc.env(), capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr
    deadline = time.monotonic() + 10
    while fc.processes() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not fc.processes()
    assert not fc.jail_dirs()
    assert not runs(runner.run_dir)
    for v in fc.vols.iterdir():
        assert owner(v) == (0, 0, 0o600)


def exec_socket(fc, runner, proc) -> Path:
    """The run's directory once the VM started and its exec socket is there."""
    fc.wait_for_call("/actions", "InstanceStart")
    return wait_for_agent(runner, proc)


def stop_run(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    return proc.communicate(timeout=60)


@pytest.mark.parametrize("jail", [True, False], ids=["jail", "no-jail"])
def test_exec_reaches_the_agent_through_vsock(fc, runner, jail):
    """`exec` into a Firecracker run: the runtime connects to the vsock's
    socket (in the jail) as soon as the VM started (the workload's stdio is
    on it), writes "CONNECT 1024\\n", and after Firecracker's "OK" speaks
    the agent protocol to the guest: here the stand-in's fake agent, which
    prints the argv it was sent and exits 5. A guest still booting
    (Firecracker closes the first two connections) is waited for; that one
    connection then serves every exec."""
    fc.configure(on_start="wait", vsock={"mode": "agent", "exit": 5, "closes": 2})
    proc = fc.start(jail=jail)
    try:
        run = exec_socket(fc, runner, proc)
        connects = lambda: [r for r in fc.records() if r["event"] == "vsock_connect"]
        deadline = time.monotonic() + 30
        while len(connects()) < 3:  # before any exec asks
            assert time.monotonic() < deadline, fc.records()
            time.sleep(0.05)
        r = ctrj_exec(runner, [run.name, "echo", "hi there"])
        assert r.returncode == 5, r.stderr
        assert r.stdout == b"standin-agent ran: echo hi there\n"
        assert [c["line"] for c in connects()] == ["CONNECT 1024\n"] * 3
        r = ctrj_exec(runner, [run.name, "id", "-u"])
        assert (r.returncode, r.stdout) == (5, b"standin-agent ran: id -u\n"), r.stderr
        assert len(connects()) == 3
        started = [r["argv"] for r in fc.records() if r["event"] == "agent_start"]
        assert started == [["echo", "hi there"], ["id", "-u"]]
        body = next(c["body"] for c in fc.calls() if c["path"] == "/vsock")
        assert body == {"guest_cid": 3,
                        "uds_path": "run/agent.vsock" if jail else str(run / "agent.vsock")}
        listen = [r for r in fc.records() if r["event"] == "vsock_listen"]
        assert len(listen) == 1
    finally:
        out, err = stop_run(proc)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert not fc.violations(), fc.violations()


@pytest.mark.parametrize("mode,says", [
    ("garbage", "answered CONNECT 1024 with 'HTTP/1.1 400 Bad Request'"),
    ("silent", "did not answer CONNECT"),
])
def test_exec_without_an_agent_fails_in_one_line(fc, runner, mode, says):
    """A vsock that answers garbage or never answers: `exec` fails with one
    line saying so (at once, or after an attempt's 2 s bound), and the run
    goes on (a later stop is graceful)."""
    fc.configure(on_start="wait", vsock={"mode": mode})
    proc = fc.start()
    try:
        run = exec_socket(fc, runner, proc)
        t0 = time.monotonic()
        r = ctrj_exec(runner, [run.name, "true"], timeout=30)
        took = time.monotonic() - t0
        lines = r.stderr.decode().splitlines()
        assert r.returncode == 126, r.stderr
        assert len(lines) == 1 and says in lines[0], lines
        assert took < 10, took
        assert proc.poll() is None
    finally:
        out, err = stop_run(proc)
    assert proc.returncode == 128 + signal.SIGTERM, err


def test_workload_stdio_through_vsock(fc, runner):
    """A Firecracker run's workload stdio is on the agent channel, which
    the runtime connects at once (the guest's init waits for it before
    starting the workload): here the stand-in's fake guest, which listens
    only after a few closed connections, then sends the workload's stdout
    and stderr on the main session. They arrive apart, on ctr-jailer's
    stdout and stderr, and the status comes from the control disk."""
    fc.configure(on_start="wait", vsock={
        "mode": "agent", "closes": 3,
        "workload": {"stdout": "to stdout\n", "stderr": "to stderr\n", "exit": 6}})
    r = subprocess.run(fc.argv(), env=fc.env(), capture_output=True, timeout=120)
    assert r.returncode == 6, r.stderr
    assert r.stdout == b"to stdout\n", (r.stdout, r.stderr)
    assert b"to stderr\n" in r.stderr and b"to stdout" not in r.stderr, r.stderr
    assert [e["owed"] for e in fc.records() if e["event"] == "workload_drained"] == [0]
    # the control disk asked for the workload's stdio on the channel
    assert len([e for e in fc.records() if e["event"] == "vsock_connect"]) == 4
    assert not fc.violations(), fc.violations()


def test_exec_waits_for_a_late_guest_listener(fc, runner):
    """A guest whose agent listens only seconds later (Firecracker closes
    the first 25 connections, some 4 s of retries, past the old 2 s
    bound): exec waits for it and runs."""
    fc.configure(on_start="wait", vsock={"mode": "agent", "exit": 3, "closes": 25})
    proc = fc.start()
    try:
        run = exec_socket(fc, runner, proc)
        t0 = time.monotonic()
        r = ctrj_exec(runner, [run.name, "echo", "late"], timeout=90)
        assert (r.returncode, r.stdout) == (3, b"standin-agent ran: echo late\n"), r.stderr
        assert time.monotonic() - t0 > 2
        assert len([r for r in fc.records() if r["event"] == "vsock_connect"]) == 26
    finally:
        out, err = stop_run(proc)
    assert proc.returncode == 128 + signal.SIGTERM, err


def test_exec_waiting_for_the_guest_does_not_stall_the_supervisor(fc, runner):
    """No guest listener (Firecracker closes every connection): an exec
    waits (the connection is retried for up to 50 s) while the supervisor
    goes on: a SIGTERM during the wait is acted on at once (Ctrl-Alt-Del,
    a graceful stop), and the exec ends with the run."""
    fc.configure(on_start="wait", vsock={"mode": "close"})
    proc = fc.start()
    try:
        run = exec_socket(fc, runner, proc)
        ex = subprocess.Popen([str(BINARY), "exec", run.name, "true"], env=runner.env(),
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE)
        deadline = time.monotonic() + 30
        while len([r for r in fc.records() if r["event"] == "vsock_connect"]) < 3:
            assert time.monotonic() < deadline, fc.records()
            time.sleep(0.05)
        assert ex.poll() is None  # still waiting for the guest
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
        took = time.monotonic() - t0
        ex_out, ex_err = ex.communicate(timeout=30)
    finally:
        stop_run(proc)
    assert proc.returncode == 128 + signal.SIGTERM
    assert any(c["path"] == "/actions" and c["body"]["action_type"] == "SendCtrlAltDel"
               for c in fc.calls())
    assert took < 10, took  # not after the 50 s the connection may take
    assert ex.returncode != 0, (ex_out, ex_err)


@pytest.mark.parametrize("how", ["symlink", "socket"])
def test_vsock_socket_hijack_refused(fc, runner, decoy, how):
    """A compromised Firecracker replaces the vsock's socket (in run/, which
    it owns) with a symlink to another socket, or with a socket a process of
    its own uid serves: exec refuses in one line, and neither receives a
    byte (no CONNECT, no agent frame)."""
    fc.configure(on_start="wait", vsock={"mode": "agent"}, hijack_target="vsock",
                 hijack={"symlink": str(decoy.path)} if how == "symlink" else "socket")
    proc = fc.start()
    try:
        run = exec_socket(fc, runner, proc)
        deadline = time.monotonic() + 30
        while not any(r["event"] == "hijack" for r in fc.records()):
            assert time.monotonic() < deadline, fc.records()
            time.sleep(0.05)
        r = ctrj_exec(runner, [run.name, "true"], timeout=30)
        lines = r.stderr.decode().splitlines()
        assert r.returncode == 126, r.stderr
        assert len(lines) == 1 and "refusing" in lines[0], lines
    finally:
        out, err = stop_run(proc)
    assert proc.returncode == 128 + signal.SIGTERM, err  # the API socket is intact
    time.sleep(0.5)
    assert decoy.received == [], f"root connected to the decoy socket: {decoy.received}"
    hijacked = [r for r in fc.records() if r["event"] == "hijacked"]
    assert all(h["received"] == "" for h in hijacked), f"the impostor got bytes: {hijacked}"
    assert [r for r in fc.records() if r["event"] == "vsock_connect"] == []


def test_exec_into_a_detached_run_through_vsock(fc, runner):
    """`run -d`: the supervisor holds the VM, and exec reaches the fake
    guest agent through it; `stop` ends it and leaves nothing."""
    fc.configure(on_start="wait", vsock={"mode": "agent", "exit": 0})
    r = subprocess.run(fc.argv(["-d", "--name", "fcvs"]), env=fc.env(), capture_output=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    fc.wait_for_call("/actions", "InstanceStart")
    e = ctrj_exec(runner, ["fcvs", "uname", "-a"])
    assert (e.returncode, e.stdout) == (0, b"standin-agent ran: uname -a\n"), e.stderr
    s = subprocess.run([str(BINARY), "stop", "fcvs"], env=fc.env(), capture_output=True,
                       timeout=120)
    assert s.returncode == 0, s.stderr
    assert not fc.jail_dirs()
    assert subprocess.run([str(BINARY), "rm", "fcvs"], env=fc.env(),
                          capture_output=True).returncode == 0
    assert not runs(runner.run_dir)


def test_request_bodies_with_network_validate():
    """The bodies for a configuration the CLI cannot make yet (a TAP and
    guest MAC, for the networking work) and the agent's vsock (every run
    has one: checked against the stand-in in the tests above too) match
    the schema."""
    dump = BUILD / "tests/unit/fc_plan_dump"
    out = subprocess.run([str(dump)], capture_output=True, check=True, text=True).stdout
    ops = firecracker_standin.load_api(str(SCHEMA))
    import re
    import jsonschema
    seen = []
    for line in out.splitlines():
        req = json.loads(line)
        schema = next(s for (m, rx), s in ops.items() if m == "PUT" and re.match(rx, req["path"]))
        jsonschema.Draft4Validator(schema).validate(req["body"])
        seen.append(req["path"])
    assert "/network-interfaces/eth0" in seen
    net = next(json.loads(l)["body"] for l in out.splitlines()
               if json.loads(l)["path"] == "/network-interfaces/eth0")
    assert net == {"iface_id": "eth0", "host_dev_name": "ctrj-tap0",
                   "guest_mac": "06:00:0a:00:00:02"}
    # the agent channel's vsock: a socket inside the jail, a guest CID >= 3
    vsock = next(json.loads(l)["body"] for l in out.splitlines()
                 if json.loads(l)["path"] == "/vsock")
    assert vsock == {"guest_cid": 3, "uds_path": "run/agent.vsock"}


def test_snapshot_calls_match_the_schema():
    """Boot snapshots on Firecracker (issue 16; runs do not use them yet):
    PATCH /vm Paused and PUT /snapshot/create (Full) to take one; PUT
    /snapshot/load with a File memory backend, not resumed, the run's TAP
    over the snapshot's, then each drive re-pointed (PATCH /drives/ID) before
    PATCH /vm Resumed. Each body is valid for its method and path."""
    import re
    import jsonschema
    dump = BUILD / "tests/unit/fc_snapshot_dump"
    out = subprocess.run([str(dump)], capture_output=True, check=True, text=True).stdout
    ops = firecracker_standin.load_api(str(SCHEMA))
    calls = [json.loads(line) for line in out.splitlines()]
    for c in calls:
        schema = next(s for (m, rx), s in ops.items()
                      if m == c["method"] and re.match(rx, c["path"]))
        jsonschema.Draft4Validator(schema).validate(c["body"])
    assert [(c["method"], c["path"]) for c in calls] == [
        ("PATCH", "/vm"), ("PUT", "/snapshot/create"),
        ("PUT", "/snapshot/load"), ("PATCH", "/drives/base"), ("PATCH", "/drives/control"),
        ("PATCH", "/vm")]
    assert calls[0]["body"] == {"state": "Paused"} and calls[-1]["body"] == {"state": "Resumed"}
    assert calls[1]["body"]["snapshot_type"] == "Full"
    load = calls[2]["body"]
    assert load["mem_backend"] == {"backend_type": "File", "backend_path": "snapshot/memory"}
    assert load["resume_vm"] is False
    assert load["network_overrides"] == [{"iface_id": "eth0", "host_dev_name": "ctrj-tap1"}]
    # negative control: the schema refuses what Firecracker would
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft4Validator(next(s for (m, rx), s in ops.items()
                                        if m == "PATCH" and re.match(rx, "/vm"))).validate(
            {"state": "Stopped"})


def test_vmlinux_from_debian_bzimage(kernel_ready):
    """cj_kernel_vmlinux on the Debian cloud kernel in the test cache: an ELF
    with the PVH note; truncated and non-kernel files get clear errors (the
    unit test does the checking once given the bzImage)."""
    images = sorted((kernel_ready / "kernels/default/boot").glob("vmlinuz-*"))
    assert images
    r = subprocess.run([str(BUILD / "tests/unit/test_kernel")],
                       env={**os.environ, "CTRJ_TEST_BZIMAGE": str(images[0])},
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "vmlinux_from_bzimage" in r.stdout + r.stderr
    assert "SKIPPED" not in r.stdout + r.stderr


def test_host_directory_refused_naming_a_volume(fc, runner, tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    r = fc.run(["-v", f"{shared}:/h"])
    assert r.returncode == 125, r.stderr
    lines = error_lines(r.stderr)
    assert len(lines) == 1, lines
    assert "virtiofs" in lines[0] and "--vmm qemu" in lines[0] and "-v NAME:/h" in lines[0]
    assert not fc.jail_dirs()
    assert all(c["path"] == "/version" for c in fc.calls())
