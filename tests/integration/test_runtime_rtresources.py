# SPDX-License-Identifier: Apache-2.0
"""ctr-jailer-runtime's resources and state: the cgroup the engine names
(linux.cgroupsPath) holds the VMM with the memory limit and CPU quota set
on it; `--memory` and `--cpus` as the guest sees them; named and host
directory volumes that outlive the container; the state JSON against the
runtime spec's state schema across create, start, kill and delete; what
cannot map named in one warning.

One dockerd for the module (test_runtime_docker's fixture), one VM per
test: each container checks several things at once."""
import json
import os
import uuid
from pathlib import Path

import jsonschema
import pytest

from conftest import qemu_processes_for
from test_runtime import World, drive_created, world  # noqa: F401 (fixture)
from test_runtime_docker import docker, engine, run, wait_log  # noqa: F401 (fixtures)

CGROUP = Path("/sys/fs/cgroup")
V2 = (CGROUP / "cgroup.controllers").exists()
STATE_SCHEMA = Path(__file__).parent.parent / "schema" / "oci-runtime-state.json"
MARGIN_MIB = 256   # the VMM's cgroup: guest memory + this (jail.h, CJ_JAIL_MARGIN_MIB)


def cgroup_dirs(path):
    """The directories of a cgroup path: one on v2, memory/pids/cpu on v1."""
    if V2:
        return {"unified": CGROUP / path.lstrip("/")}
    return {c: CGROUP / c / path.lstrip("/") for c in ("memory", "pids", "cpu")}


def procs(d):
    return [int(p) for p in (d / "cgroup.procs").read_text().split()]


def virtiofsds(run_dir):
    """virtiofsd processes serving a run under run_dir (by their socket)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")
        except OSError:
            continue
        if any(a.startswith(f"--socket-path={run_dir}/".encode()) for a in cmd):
            found.append(int(pid))
    return found


def cpu_quota(dirs):
    if V2:
        return (dirs["unified"] / "cpu.max").read_text().strip()
    cpu = dirs["cpu"]
    return "%s %s" % ((cpu / "cpu.cfs_quota_us").read_text().strip(),
                      (cpu / "cpu.cfs_period_us").read_text().strip())


def memory_limit(dirs):
    d = dirs["unified"] if V2 else dirs["memory"]
    return int((d / ("memory.max" if V2 else "memory.limit_in_bytes")).read_text())


@pytest.mark.xdist_group("rtresources")
def test_docker_memory_cpus_cgroup_and_volumes(docker, tmp_path):
    """docker run --memory 512m --cpus 1 -v named:/data -v HOSTDIR:/hdata: the
    guest sees 512 MiB (less its kernel) and one CPU; the VMM is in the
    cgroup Docker names, and so are the shares' virtiofsds, with cpu quota
    100000/100000 and the memory limit 512 MiB + the margin; the guest's files reach the host directory and
    the named volume, a file the host writes reaches the guest; after
    `docker rm` the cgroup we made is gone, the named volume and its file
    are still there."""
    hostdir = tmp_path / "hostdir"
    hostdir.mkdir()
    vol, name = f"ctrjvol{uuid.uuid4().hex[:6]}", "ctrj-res"
    script = ("echo mem $(awk '/MemTotal/ {print $2}' /proc/meminfo); echo nproc $(nproc); "
              "echo guest-named > /data/f; echo guest-host > /hdata/f; echo ready; "
              "while [ ! -e /hdata/go ]; do sleep 0.2; done; echo got $(cat /hdata/go); "
              "exit 7")
    r = run(docker, "-d", "--name", name, "--memory", "512m", "--cpus", "1",
            "-v", f"{vol}:/data", "-v", f"{hostdir}:/hdata", "busybox", "sh", "-c", script)
    assert r.returncode == 0, r.stderr.decode() + docker.log_tail()
    try:
        wait_log(docker, name, "ready")
        cid = docker.docker("inspect", "-f", "{{.Id}}", name).stdout.decode().strip()
        driver = docker.docker("info", "-f", "{{.CgroupDriver}}").stdout.decode().strip()
        path = f"/system.slice/docker-{cid}.scope" if driver == "systemd" else f"/docker/{cid}"
        dirs = cgroup_dirs(path)
        vmms = qemu_processes_for(docker.run_dir)
        assert len(vmms) == 1, vmms
        helpers = virtiofsds(docker.run_dir)
        assert len(helpers) >= 2, helpers   # one per share (and its sandboxed child)
        for d in dirs.values():
            assert set(vmms + helpers) <= set(procs(d)), (d, procs(d), vmms, helpers)
        assert cpu_quota(dirs) == "100000 100000"
        assert memory_limit(dirs) == (512 + MARGIN_MIB) << 20
        assert (hostdir / "f").read_text() == "guest-host\n"
        (hostdir / "go").write_text("host-file\n")
        code = docker.docker("wait", name, timeout=300).stdout.strip()
        assert code == b"7", code
        out = docker.logs(name)
        mem = int(out.split("mem ")[1].split()[0])
        assert 400 * 1024 < mem <= 512 * 1024, out   # kB: 512 MiB less the kernel
        assert "nproc 1\n" in out and "got host-file" in out, out
    finally:
        docker.docker("rm", "-f", name, check=False)
    for d in dirs.values():
        assert not d.exists(), f"{d} left"
    mp = docker.docker("volume", "inspect", "-f", "{{.Mountpoint}}", vol).stdout.decode().strip()
    assert (Path(mp) / "f").read_text() == "guest-named\n"
    docker.docker("volume", "rm", vol)


def test_state_schema_cgroup_kept_and_one_warning(world):
    """create -> state -> start -> state -> kill -> state -> delete: every
    state validates against the spec's state schema (pid while created or
    running); the VMM joins the cgroup of the systemd-form cgroupsPath
    (--systemd-cgroup) the 'engine' made beforehand,
    which is left in place at delete (what the engine made is not ours to
    remove); what cannot map is named in one warning, what the VM makes moot
    (maskedPaths, readonlyPaths) is not."""
    validator = jsonschema.Draft7Validator(json.loads(STATE_SCHEMA.read_text()))
    b = world.bundle(["/bin/sh", "-c", "echo up; while :; do sleep 1; done"],
                     apparmorProfile="docker-default", selinuxLabel="system_u:x")
    cfg = json.loads((b / "config.json").read_text())
    # systemd's form, as dockerd with the systemd cgroup driver gives it
    slice = f"ctrjtest{uuid.uuid4().hex[:8]}.slice"
    cgpath = f"/{slice}/eng-c9.scope"
    rt = world.rt
    world.rt = lambda: rt() + ["--systemd-cgroup"]
    cfg["annotations"] = {"org.example/key": "value"}
    cfg["linux"].update({
        "cgroupsPath": f"{slice}:eng:c9",
        "resources": {"cpu": {"quota": 50000, "period": 100000}},
        "devices": [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229}],
        "seccomp": {"defaultAction": "SCMP_ACT_ERRNO"},
        "sysctl": {"net.ipv4.ip_forward": "1"},
        "maskedPaths": ["/proc/kcore"], "readonlyPaths": ["/proc/sys"]})
    (b / "config.json").write_text(json.dumps(cfg))
    dirs = cgroup_dirs(cgpath)
    for d in dirs.values():
        d.mkdir(parents=True)   # the engine's, made before create
    try:
        show = "; ".join(f"cat {d}/cgroup.procs" for d in dirs.values())
        out, _ = drive_created(world, b, "c9", [
            ["state", "c9"], ["start", "c9"], ["state", "c9"],
            ["run", ["sh", "-c", show]], ["kill", "c9", "KILL"], ["wait"],
            ["state", "c9"], ["delete", "c9"], ["state", "c9"]])
        created, start, running, listed, kill, exited, stopped, delete, gone = out
        states = [json.loads(s["stdout"]) for s in (created, running, stopped)]
        for st in states:
            errors = [e.message for e in validator.iter_errors(st)]
            assert not errors, (st, errors)
        assert [s["status"] for s in states] == ["created", "running", "stopped"]
        assert states[0]["annotations"] == {"org.example/key": "value"}
        assert start["rc"] == 0 and kill["rc"] == 0 and delete["rc"] == 0, out
        assert exited["exit"] == 137 and gone["rc"] != 0
        # every controller's directory held the VMM: one pid, the same one
        pids = [int(p) for p in listed["stdout"].split()]
        assert len(pids) == len(dirs) and len(set(pids)) == 1, listed
        assert cpu_quota(dirs) == "50000 100000"
        for d in dirs.values():
            assert d.exists() and not procs(d), d   # the engine's: kept, empty
        warnings = [line["msg"] for line in world.log_lines()
                    if line["level"] == "warning" and "not applied" in line["msg"]]
        assert len(warnings) == 1, warnings
        for what in ("devices", "apparmorProfile", "selinuxLabel", "seccomp", "sysctl"):
            assert what in warnings[0], warnings
        assert "maskedPaths" not in warnings[0] and "readonlyPaths" not in warnings[0]
    finally:
        for d in dirs.values():
            if d.exists():
                d.rmdir()
            if d.parent.exists():
                d.parent.rmdir()
