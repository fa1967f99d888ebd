# SPDX-License-Identifier: Apache-2.0
"""ctr-jailer-runtime driven as containerd's runc shim drives runc: create
(the pid file names the supervisor, which this driver reaps as a subreaper,
as the shim does), state, start, kill, exec, delete. Assertions are on what
the workload said and the status its supervisor exited with."""
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from conftest import BUILD, links_settled, qemu_processes_for, runs

RUNTIME = BUILD / "ctr-jailer-runtime"

# A subreaper that runs the runtime's verbs, as the shim does: the
# supervisor that `create` leaves is reparented to it, and it reaps it.
DRIVER = r"""
import ctypes, json, os, subprocess, sys, tempfile, time
ctypes.CDLL(None).prctl(36, 1)  # PR_SET_CHILD_SUBREAPER
rt, steps = json.loads(sys.argv[1]), json.loads(sys.argv[2])
out, pid = [], None
for step in steps:
    if step[0] == "wait":
        _, st = os.waitpid(pid, 0)
        out.append({"exit": os.waitstatus_to_exitcode(st)})
        continue
    if step[0] == "sleep":
        time.sleep(step[1]); continue
    # files, not pipes, as the shim gives: the supervisor keeps them open
    with tempfile.TemporaryFile() as o, tempfile.TemporaryFile() as e:
        p = subprocess.run(rt + step, stdout=o, stderr=e, timeout=600)
        o.seek(0), e.seek(0)
        out.append({"rc": p.returncode, "stdout": o.read().decode(errors="replace"),
                    "stderr": e.read().decode(errors="replace")})
    if step[0] == "create" and p.returncode == 0:
        pid = int(open(step[step.index("--pid-file") + 1]).read())
print(json.dumps(out))
"""


def drive_created(world, bundle, cid, steps):
    """create through sh with its stdout and stderr in a file (the shim's
    pipe), then the driver's steps ("run" steps run a command as is).
    Returns the steps' results and what the container printed."""
    out_file, pid_file = world.tmp / "stdout", world.tmp / "init.pid"
    script = (f"exec {' '.join(world.rt())} create --bundle {bundle} --pid-file {pid_file} "
              f"{cid} > {out_file} 2>&1")
    drv = DRIVER.replace("for step in steps:", "subprocess.run(['sh', '-c', sys.argv[3]], "
                         "check=True)\npid = int(open(sys.argv[4]).read())\nfor step in steps:")
    drv = drv.replace("    p = subprocess.run(rt + step,", "    p = subprocess.run(step[1] if "
                      "step[0] == 'run' else rt + step,")
    p = subprocess.run([sys.executable, "-c", drv, json.dumps(world.rt()), json.dumps(steps),
                        script, str(pid_file)], env=world.env, capture_output=True, timeout=900)
    assert p.returncode == 0, p.stderr.decode()
    return json.loads(p.stdout), out_file.read_text(errors="replace")


class World:
    def __init__(self, tmp: Path, cache: Path, rootfs: Path):
        self.tmp, self.cache, self.rootfs = tmp, cache, rootfs
        self.root, self.run_dir, self.log = tmp / "state", tmp / "run", tmp / "log.json"
        self.env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                    "CTR_JAILER_CACHE": str(cache), "CTR_JAILER_RUN_DIR": str(self.run_dir),
                    "MEM_SIZE_MIB": "256", "VCPU_COUNT": "1"}

    def rt(self):
        return [str(RUNTIME), "--root", str(self.root), "--log", str(self.log),
                "--log-format", "json"]

    def bundle(self, args, name="b", terminal=False, mounts=(), **process):
        b = self.tmp / name
        b.mkdir()
        config = {
            "ociVersion": "1.0.2",
            "process": {"terminal": terminal, "user": {"uid": 0, "gid": 0}, "args": args,
                        "env": ["PATH=/bin", "GREETING=hello oci"], "cwd": "/", **process},
            "root": {"path": str(self.rootfs)},
            "hostname": "ocibox",
            "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"},
                       {"destination": "/etc/x", "type": "bind", "source": "/etc/passwd",
                        "options": ["rbind", "ro"]}, *mounts],
            "linux": {"namespaces": [{"type": "pid"}, {"type": "mount"}]},
        }
        (b / "config.json").write_text(json.dumps(config))
        return b

    def drive(self, *steps):
        p = subprocess.run([sys.executable, "-c", DRIVER, json.dumps(self.rt()),
                            json.dumps(list(steps))], env=self.env, capture_output=True,
                           timeout=900)
        assert p.returncode == 0, p.stderr.decode()
        return json.loads(p.stdout)

    def log_lines(self):
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]


@pytest.fixture
def world(kernel_ready, tmp_path, busybox_rootfs):
    w = World(tmp_path, kernel_ready, busybox_rootfs)
    yield w
    procs = qemu_processes_for(w.run_dir)
    for pid in procs:
        os.kill(pid, 9)
    assert not procs, f"VMM processes left running: {procs}"
    assert not runs(w.run_dir), f"runs left: {runs(w.run_dir)}"
    assert not w.root.exists() or not list(w.root.iterdir()), "container state left"


def test_lifecycle_exit_code_and_state(world):
    """create holds the workload (state created, nothing printed yet); start
    releases it; the supervisor exits with the workload's status; state
    reports stopped; delete removes the container."""
    b = world.bundle(["/bin/sh", "-c", 'echo "kernel $(uname -r) $GREETING $(hostname)"; exit 3'])
    pid_file = world.tmp / "init.pid"
    out = world.drive(["create", "--bundle", str(b), "--pid-file", str(pid_file),
                       "--no-pivot", "--some-future-flag", "c1"],
                      ["state", "c1"], ["start", "c1"], ["wait"], ["state", "c1"],
                      ["delete", "c1"], ["state", "c1"])
    create, created, start, exited, stopped, delete, gone = out
    assert create["rc"] == 0, create
    assert "kernel" not in create["stdout"]  # held: the workload has not run
    st = json.loads(created["stdout"])
    assert st["ociVersion"] and st["id"] == "c1" and st["status"] == "created"
    assert st["bundle"] == str(b) and st["pid"] == int(pid_file.read_text()) and st["created"]
    assert start["rc"] == 0, start
    assert exited["exit"] == 3
    assert json.loads(stopped["stdout"])["status"] == "stopped"
    assert delete["rc"] == 0 and gone["rc"] != 0
    # the unknown flag and the unmappable mount are warned about in the log
    levels = [(l["level"], l["msg"]) for l in world.log_lines()]
    assert any(lv == "warning" and "--some-future-flag" in m for lv, m in levels)
    assert any(lv == "warning" and "mount /etc/x" in m for lv, m in levels)
    assert any(lv == "error" and "does not exist" in m for lv, m in levels)


def test_output_reaches_the_callers_stdout(world):
    """The workload's output goes to the stdout create was given (the shim's
    pipe), from the guest kernel."""
    share = world.tmp / "share"
    share.mkdir()
    (share / "hello").write_text("from the host\n")
    mounts = [{"destination": "/data", "type": "bind", "source": str(share),
               "options": ["rbind", "rw"]},
              {"destination": "/scratch", "type": "tmpfs", "source": "tmpfs",
               "options": ["nosuid", "size=8m", "mode=1777"]}]
    b = world.bundle(["/bin/sh", "-c", 'echo "kernel $(uname -r) $GREETING $(hostname)"; '
                      'cat /data/hello; echo guest > /data/back; grep " /scratch " /proc/mounts'],
                     mounts=mounts)
    (start, exited, delete), text = drive_created(
        world, b, "c2", [["start", "c2"], ["wait"], ["delete", "c2"]])
    assert start["rc"] == 0 and exited["exit"] == 0 and delete["rc"] == 0
    assert "hello oci ocibox" in text, text
    assert "from the host" in text and (share / "back").read_text() == "guest\n", text
    assert "tmpfs /scratch tmpfs" in text and "size=8192k" in text, text
    guest_release = text.split("kernel ", 1)[1].split()[0]
    assert guest_release != os.uname().release


def test_read_only_bind_with_a_long_destination(world):
    """A read-only bind mount stays read-only whatever its paths' length
    (the mapping cut SRC:DEST:ro at 299 bytes: exactly there ":ro" was lost
    and the guest wrote the host directory). Control: a short read-only
    share refuses the write too, a writable one takes it."""
    ro, rw = world.tmp / "ro", world.tmp / "rw"
    ro.mkdir(), rw.mkdir()
    room = 299 - len(str(ro)) - 1  # SRC ":" DEST fills the old buffer to the byte
    dest = ""
    while len(dest) < room:
        dest += "/" + "d" * min(50, room - len(dest) - 1)
    assert len(f"{ro}:{dest}") == 299 and "//" not in dest
    mounts = [{"destination": dest, "type": "bind", "source": str(ro),
               "options": ["rbind", "ro"]},
              {"destination": "/short", "type": "bind", "source": str(ro),
               "options": ["rbind", "ro"]},
              {"destination": "/w", "type": "bind", "source": str(rw),
               "options": ["rbind", "rw"]}]
    b = world.bundle(["/bin/sh", "-c", f"echo x > {dest}/long; echo x > /short/short; "
                      "echo x > /w/rw; echo done"], mounts=mounts)
    (start, exited, delete), text = drive_created(
        world, b, "c9", [["start", "c9"], ["wait"], ["delete", "c9"]])
    assert start["rc"] == 0 and delete["rc"] == 0, text
    assert "done" in text, text
    assert (rw / "rw").exists(), text
    assert not (ro / "short").exists(), text
    assert not (ro / "long").exists(), "the guest wrote a read-only bind mount"


@pytest.mark.parametrize("sig,code", [("TERM", 143), ("KILL", 137)])
def test_kill(world, sig, code):
    """kill TERM is the graceful stop (the workload gets SIGTERM: 143), KILL
    ends the VM at once (137)."""
    b = world.bundle(["/bin/sh", "-c", "echo up; while :; do sleep 1; done"])
    pid_file = world.tmp / "init.pid"
    out = world.drive(["create", "--bundle", str(b), "--pid-file", str(pid_file), "c3"],
                      ["start", "c3"], ["sleep", 3], ["kill", "c3", sig], ["wait"],
                      ["kill", "c3", "KILL"], ["delete", "c3"])
    create, start, kill, exited, late_kill, delete = out
    assert create["rc"] == 0 and start["rc"] == 0 and kill["rc"] == 0, out
    assert exited["exit"] == code
    assert late_kill["rc"] != 0 and "not running" in late_kill["stderr"]
    assert delete["rc"] == 0


def test_exec_process_json(world):
    """exec --process --detach --pid-file: the relay's pid exits with the
    command's status; without --detach the runtime does."""
    b = world.bundle(["/bin/sh", "-c", "echo ready; while :; do sleep 1; done"])
    proc = world.tmp / "process.json"
    proc.write_text(json.dumps({"args": ["/bin/sh", "-c", "echo exec $GREETING; exit 7"],
                                "env": ["PATH=/bin", "GREETING=from exec"], "cwd": "/",
                                "user": {"uid": 0, "gid": 0}, "terminal": False}))
    pid_file, exec_pid = world.tmp / "init.pid", world.tmp / "exec.pid"
    out = world.drive(["create", "--bundle", str(b), "--pid-file", str(pid_file), "c4"],
                      ["start", "c4"], ["exec", "--process", str(proc), "c4"],
                      ["exec", "--process", str(proc), "--detach", "--pid-file", str(exec_pid),
                       "c4"],
                      ["ps", "--format", "json", "c4"], ["delete", "c4"],
                      ["delete", "--force", "c4"], ["wait"])
    create, start, fg, bg, ps, delete, force, exited = out
    assert create["rc"] == 0 and start["rc"] == 0, out
    assert fg["rc"] == 7 and "exec from exec" in fg["stdout"], fg
    assert bg["rc"] == 0 and int(exec_pid.read_text()) > 0
    assert json.loads(ps["stdout"]) == [int(pid_file.read_text())]
    assert delete["rc"] != 0 and "not stopped" in delete["stderr"]
    assert force["rc"] == 0
    assert exited["exit"] == 137


def test_firecracker_refused(world):
    b = world.bundle(["/bin/true"])
    world.env["CTR_JAILER_VMM"] = "firecracker"
    (create,) = world.drive(["create", "--bundle", str(b), "--pid-file",
                             str(world.tmp / "p"), "c5"])
    assert create["rc"] != 0 and "needs QEMU" in create["stderr"]
    assert not (world.tmp / "p").exists()


def test_version_and_features():
    v = subprocess.run([RUNTIME, "--version"], capture_output=True, text=True, check=True)
    assert v.stdout.startswith("ctr-jailer-runtime version") and "spec: 1." in v.stdout
    f = json.loads(subprocess.run([RUNTIME, "features"], capture_output=True, text=True,
                                  check=True).stdout)
    assert f["ociVersionMax"].startswith("1.") and "namespaces" in f["linux"]


@pytest.fixture
def netns_pair():
    """An "engine" namespace and a container namespace joined by a veth, as
    an engine leaves them before it calls the runtime: the container's end
    has 10.99.0.2/24 and a default route via the engine's 10.99.0.1."""
    tag = uuid.uuid4().hex[:6]
    engine_ns, ctr_ns = f"cjre{tag}", f"cjrc{tag}"
    made = []
    try:
        for ns in (engine_ns, ctr_ns):
            subprocess.run(["ip", "netns", "add", ns], check=True)
            made.append(ns)
        sh = lambda *a: subprocess.run(["ip", *a], check=True, capture_output=True)
        sh("link", "add", "ve", "netns", engine_ns, "type", "veth", "peer", "name", "eth0",
           "netns", ctr_ns)
        sh("-n", engine_ns, "addr", "add", "10.99.0.1/24", "dev", "ve")
        sh("-n", ctr_ns, "addr", "add", "10.99.0.2/24", "dev", "eth0")
        sh("-n", ctr_ns, "link", "set", "eth0", "mtu", "1400")
        for ns, dev in ((engine_ns, "ve"), (ctr_ns, "eth0"), (ctr_ns, "lo"), (engine_ns, "lo")):
            sh("-n", ns, "link", "set", dev, "up")
        sh("-n", ctr_ns, "route", "add", "default", "via", "10.99.0.1")
        yield engine_ns, ctr_ns
    finally:
        for ns in made:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def test_network_namespace_by_path(world, make_rootfs, netns_pair):
    """The VM takes over the container namespace's interface: a server in
    the guest answers from the engine's namespace at the container's
    address; the guest has its address, gateway and MTU; the interface
    keeps no address of its own."""
    engine_ns, ctr_ns = netns_pair
    world.rootfs = make_rootfs({"/www/index.html": ("served by the guest\n", 0o644)})
    (world.rootfs / "bin/httpd").symlink_to("busybox")
    (world.rootfs / "bin/ip").symlink_to("busybox")
    b = world.bundle(["/bin/sh", "-c", "ip addr show eth0; ip route; cat /sys/class/net/eth0/mtu;"
                      " cat /sys/class/net/eth0/address; httpd -f -p 80 -h /www"])
    config = json.loads((b / "config.json").read_text())
    config["linux"]["namespaces"].append({"type": "network",
                                          "path": f"/var/run/netns/{ctr_ns}"})
    (b / "config.json").write_text(json.dumps(config))
    mac = subprocess.run(["ip", "-n", ctr_ns, "-j", "link", "show", "eth0"], check=True,
                         capture_output=True, text=True).stdout
    mac = json.loads(mac)[0]["address"]
    curl = ["ip", "netns", "exec", engine_ns, "curl", "-s", "--max-time", "5",
            "--retry", "20", "--retry-connrefused", "--retry-delay", "2", "http://10.99.0.2/"]
    show = ["ip", "-n", ctr_ns, "-4", "-o", "addr", "show", "eth0"]
    steps = [["start", "n1"], ["sleep", 2], ["run", curl], ["run", show], ["kill", "n1", "KILL"],
             ["wait"], ["delete", "n1"]]
    (start, fetched, during, kill, exited, delete), text = drive_created(world, b, "n1", steps)
    assert start["rc"] == 0, (start, text)
    assert fetched["stdout"] == "served by the guest\n", (fetched, text)
    assert "10.99.0.2/24" in text and "default via 10.99.0.1" in text, text
    assert "1400" in text and mac in text, text
    assert exited["exit"] == 137 and delete["rc"] == 0
    assert "10.99.0.2" not in during["stdout"], during  # the guest's while it runs
    addrs = subprocess.run(show, capture_output=True, text=True).stdout
    assert "10.99.0.2/24" in addrs, addrs  # the engine's again once the VM ended
    links = links_settled(ctr_ns)
    assert b"cj-" not in links, links


def test_network_namespace_reusable_after_delete(world, netns_pair):
    """A namespace joined by path outlives the container (a pod's sandbox,
    docker's --network container:X, a restart in it): once the container
    is deleted, the next container created in it takes its interface again,
    and the engine's namespace has its address and default route back."""
    engine_ns, ctr_ns = netns_pair
    b = world.bundle(["/bin/sh", "-c", "echo up; sleep 600"])
    config = json.loads((b / "config.json").read_text())
    config["linux"]["namespaces"].append({"type": "network",
                                          "path": f"/var/run/netns/{ctr_ns}"})
    (b / "config.json").write_text(json.dumps(config))
    pid_file = world.tmp / "init.pid"
    out = world.drive(["create", "--bundle", str(b), "--pid-file", str(pid_file), "r1"],
                      ["start", "r1"], ["kill", "r1", "KILL"], ["wait"], ["delete", "r1"],
                      ["create", "--bundle", str(b), "--pid-file", str(pid_file), "r2"],
                      ["delete", "--force", "r2"])
    create1, start1, _, exited, delete1, create2, delete2 = out
    assert create1["rc"] == 0 and start1["rc"] == 0 and delete1["rc"] == 0, out
    assert exited["exit"] == 137, out
    addrs = subprocess.run(["ip", "-n", ctr_ns, "-4", "-o", "addr", "show", "eth0"],
                           capture_output=True, text=True).stdout
    routes = subprocess.run(["ip", "-n", ctr_ns, "route"], capture_output=True,
                            text=True).stdout
    assert delete2["rc"] == 0, out
    assert create2["rc"] == 0, create2["stderr"]
    assert "10.99.0.2/24" in addrs and "default via 10.99.0.1" in routes, (addrs, routes)


def test_adopt_keeps_the_engines_ingress_qdisc(world, netns_pair):
    """An interface with an ingress qdisc of the engine's own cannot be
    bridged (create fails) and keeps that qdisc and its address: the undo
    gives back only what the run changed."""
    engine_ns, ctr_ns = netns_pair
    subprocess.run(["tc", "-n", ctr_ns, "qdisc", "add", "dev", "eth0", "ingress"], check=True)
    b = world.bundle(["/bin/sh", "-c", "echo never"])
    config = json.loads((b / "config.json").read_text())
    config["linux"]["namespaces"].append({"type": "network",
                                          "path": f"/var/run/netns/{ctr_ns}"})
    (b / "config.json").write_text(json.dumps(config))
    (create,) = world.drive(["create", "--bundle", str(b), "--pid-file",
                             str(world.tmp / "init.pid"), "q1"])
    assert create["rc"] != 0, create
    qdiscs = subprocess.run(["tc", "-n", ctr_ns, "qdisc", "show", "dev", "eth0", "ingress"],
                            capture_output=True, text=True).stdout
    addrs = subprocess.run(["ip", "-n", ctr_ns, "-4", "-o", "addr", "show", "eth0"],
                           capture_output=True, text=True).stdout
    assert "ingress" in qdiscs, qdiscs
    assert "10.99.0.2/24" in addrs, addrs


def test_delete_force_after_an_interrupted_create(world):
    """An engine that gives up on a slow create (killed while the run's
    supervisor makes the shape's boot snapshot, before any state.json)
    then deletes the container with --force: its held VM goes too, and the
    id is free again. (A memory size of its own: a snapshot to make.)"""
    import random
    import signal
    import time
    world.env["MEM_SIZE_MIB"] = str(random.randrange(300, 400))
    b = world.bundle(["/bin/sh", "-c", "echo never"])
    create = subprocess.Popen(world.rt() + ["create", "--bundle", str(b), "k1"], env=world.env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and create.poll() is None:
        if any((r / "record.json").exists() for r in runs(world.run_dir)):
            break
        time.sleep(0.05)
    assert create.poll() is None, "create ended before its run was made"
    create.send_signal(signal.SIGKILL)
    create.wait()
    assert not (world.root / "k1" / "state.json").exists()
    out = world.drive(["delete", "--force", "k1"])
    assert out[0]["rc"] == 0, out
    deadline = time.time() + 30  # delete waits for the run's end: at most its teardown
    while time.time() < deadline and (runs(world.run_dir) or qemu_processes_for(world.run_dir)):
        time.sleep(0.5)
    assert not qemu_processes_for(world.run_dir), "the held VM was left running"
    assert not (world.root / "k1").exists(), "the container's state was left"


def test_a_container_that_never_started(world):
    """An engine that gives up after create deletes it: the held VM is
    killed (137), the workload never runs and nothing is left."""
    b = world.bundle(["/bin/sh", "-c", "echo must not run; exit 9"])
    (delete, exited, again), text = drive_created(
        world, b, "c6", [["sleep", 3], ["delete", "c6"], ["wait"], ["delete", "c6"]])
    assert delete["rc"] == 0, delete
    assert exited["exit"] == 137
    assert again["rc"] != 0 and "does not exist" in again["stderr"]
    assert "must not run" not in text
