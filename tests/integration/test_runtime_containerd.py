# SPDX-License-Identifier: Apache-2.0
"""containerd without Docker: `ctr run --runc-binary ctr-jailer-runtime`,
the path a Kubernetes RuntimeClass takes (containerd, its
containerd-shim-runc-v2, our runtime as the shim's runc). Debian's
containerd runs in a network namespace the test creates, with its own
config (root, state and sockets under one /tmp directory, no CRI plugin);
the busybox image is imported from a docker-archive tar the test writes.
Assertions are on what the guest printed, the exit codes ctr reports and
on the host afterwards: no run, VMM, virtiofsd or mount of ours left."""
import hashlib
import io
import json
import os
import shutil
import signal
import subprocess
import tarfile
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from conftest import BUILD, OnTerminal, processes_with_arg, qemu_processes_for, runs
from test_docker import busybox_image_tar

RUNTIME = BUILD / "ctr-jailer-runtime"
IMAGE = "docker.io/library/busybox:latest"
pytestmark = pytest.mark.xdist_group("containerd")


def image_archive():
    """busybox_image_tar's rootfs as a one-layer docker-archive image, the
    format `ctr image import` reads (manifest.json naming it busybox)."""
    layer = busybox_image_tar()
    diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "config": {"Env": ["PATH=/bin"], "Cmd": ["sh"]},
                         "rootfs": {"type": "layers", "diff_ids": [diff_id]}}).encode()
    manifest = json.dumps([{"Config": "config.json", "RepoTags": ["busybox:latest"],
                            "Layers": ["layer.tar"]}]).encode()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in (("layer.tar", layer), ("config.json", config),
                           ("manifest.json", manifest)):
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def our_mounts(paths):
    """Mount points under any of paths."""
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    return [p for p in points if any(p.startswith(f"{d}/") or p == str(d) for d in paths)]


class Containerd:
    """containerd in a network namespace of its own (loopback only), its
    root, state, sockets and our runtime's runs under one /tmp directory."""

    def __init__(self, cache: Path):
        self.netns = f"cjcd{uuid.uuid4().hex[:8]}"
        self.dir = Path(tempfile.mkdtemp(prefix="ctrj-cd-", dir="/tmp"))
        self.sock = self.dir / "ctrd.sock"
        self.run_dir = self.dir / "runs"          # CTR_JAILER_RUN_DIR
        self.rt_root = self.dir / "rt"            # the runtime's --root (ctr --runc-root)
        self.fifo = self.dir / "fifo"
        self.cache = cache
        self.proc = None
        self.netns_made = False

    def config(self):
        return "\n".join([
            "version = 2",
            f'root = "{self.dir}/root"',
            f'state = "{self.dir}/state"',
            'disabled_plugins = ["io.containerd.grpc.v1.cri"]',
            "[grpc]",
            f'  address = "{self.sock}"',
            "[ttrpc]",
            f'  address = "{self.sock}.ttrpc"',
            "[debug]",
            '  level = "debug"',
            '[plugins."io.containerd.internal.v1.opt"]',
            f'  path = "{self.dir}/opt"',
            "",
        ])

    def start(self):
        subprocess.run(["ip", "netns", "add", self.netns], check=True)
        self.netns_made = True
        subprocess.run(["ip", "-n", self.netns, "link", "set", "lo", "up"], check=True)
        (self.dir / "config.toml").write_text(self.config())
        self.fifo.mkdir()
        env = {**os.environ, "CTR_JAILER_CACHE": str(self.cache),
               "CTR_JAILER_RUN_DIR": str(self.run_dir), "MEM_SIZE_MIB": "256",
               "VCPU_COUNT": "1"}
        self.log = open(self.dir / "containerd.log", "wb")
        # nsenter, not `ip netns exec`, which remounts /sys and hides the cgroups
        self.proc = subprocess.Popen(
            ["nsenter", f"--net=/var/run/netns/{self.netns}", "containerd", "--config",
             str(self.dir / "config.toml")], stdout=self.log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + 60
        while self.ctr("version", check=False).returncode != 0:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"containerd did not start: {self.log_tail()}")
            time.sleep(0.5)

    def log_tail(self):
        return (self.dir / "containerd.log").read_text(errors="replace")[-4000:]

    def ctr(self, *args, check=True, timeout=600, input=None):
        r = subprocess.run(["ctr", "--address", str(self.sock), *map(str, args)],
                           capture_output=True, timeout=timeout, input=input)
        if check and r.returncode != 0:
            raise AssertionError(f"ctr {' '.join(map(str, args))} failed ({r.returncode}): "
                                 f"{r.stderr.decode(errors='replace')[-3000:]}")
        return r

    def run(self, *args, timeout=600):
        """ctr run with our runtime as the shim's runc."""
        return self.ctr("run", "--runc-binary", RUNTIME, "--runc-root", self.rt_root,
                        "--fifo-dir", self.fifo, *args, check=False, timeout=timeout)

    def leftovers(self):
        return {"runs": runs(self.run_dir),
                "vmms": qemu_processes_for(self.run_dir),
                "virtiofsd": processes_with_arg(f"--socket-path={self.run_dir}/".encode()),
                # ours, and containerd's rootfs (which a share held open would keep)
                "mounts": our_mounts([self.run_dir, self.rt_root, self.dir / "state"]),
                # the shim gives the runtime --root <runc root>/<namespace>
                "states": runs(self.rt_root / "default")}

    def close(self):
        try:
            for c in self.ctr("container", "ls", "-q", check=False).stdout.split():
                self.ctr("task", "kill", "-s", "KILL", c, check=False)
                self.ctr("task", "delete", "-f", c, check=False)
                self.ctr("container", "rm", c, check=False)
        except subprocess.TimeoutExpired:
            pass
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for pid in qemu_processes_for(self.run_dir):
            os.kill(pid, signal.SIGKILL)
        # shims whose containerd is gone (a test that failed half-way)
        for pid in processes_with_arg(f"{self.sock}".encode()):
            os.kill(pid, signal.SIGKILL)
        for point in reversed(our_mounts([self.dir])):
            subprocess.run(["umount", "-l", point], check=False)
        if self.netns_made:
            subprocess.run(["ip", "netns", "del", self.netns], check=False)
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="module")
def containerd(kernel_ready):
    for tool in ("containerd", "ctr", "containerd-shim-runc-v2", "nsenter"):
        if not shutil.which(tool):
            pytest.fail(f"missing {tool}: run scripts/install-deps.sh")
    c = Containerd(kernel_ready)
    try:
        c.start()
        c.ctr("image", "import", "-", input=image_archive())
        c.kernel = os.readlink(kernel_ready / "kernels" / "default")
        yield c
    finally:
        c.close()


@pytest.fixture
def ctrd(containerd):
    yield containerd
    deadline = time.monotonic() + 120
    while (left := containerd.leftovers()) != {k: [] for k in left} and \
            time.monotonic() < deadline:
        time.sleep(0.5)
    assert left == {k: [] for k in left}, f"left on the host: {left}"


def test_ctr_run_rm_shows_the_guest_kernel_and_exit_status(ctrd):
    """ctr run --rm (its own network namespace, loopback only: the VM boots
    without a network): the guest's uname -r, then exit status 3 as ctr
    run's own."""
    r = ctrd.run("--rm", IMAGE, "ctrj-rm", "sh", "-c",
                 "uname -r; ip -o link | grep -c ': ' ; exit 3")
    out = r.stdout.decode()
    assert r.returncode == 3, (r, ctrd.log_tail())
    assert r.stderr == b"", r       # the workload's output only: no notices of ours
    release, links = out.split()
    assert release != os.uname().release
    assert release in ctrd.kernel or "cloud" in release, release
    assert links == "1", out        # loopback only: the netns ctr made has no other link
    assert ctrd.ctr("container", "ls", "-q").stdout.strip() == b""


def wait_for(what, check, timeout=300):
    deadline = time.monotonic() + timeout
    while not (got := check()):
        assert time.monotonic() < deadline, f"no {what}"
        time.sleep(0.5)
    return got


def task_fields(c, cid):
    """TASK PID STATUS of ctr task ls."""
    for line in c.ctr("task", "ls").stdout.decode().splitlines()[1:]:
        fields = line.split()
        if fields and fields[0] == cid:
            return fields
    return [None, None, None]


def task_status(c, cid):
    return task_fields(c, cid)[2]


def task_pid(c, cid):
    return task_fields(c, cid)[1]


def test_ctr_detached_exec_kill_delete(ctrd):
    """ctr run -d --net-host (the runtime stays in containerd's namespace:
    the VM boots without a network) with a host directory bound in; ctr
    task exec, with and without a terminal; ctr task kill's TERM reaches
    the workload's trap, which writes to the host directory; then task
    delete, container rm."""
    cid = "ctrj-life"
    data = ctrd.dir / "data"
    data.mkdir()
    log = ctrd.dir / "life.log"
    r = ctrd.run("-d", "--net-host", "--log-uri", f"file://{log}",
                 "--mount", f"type=bind,src={data},dst=/data,options=rbind:rw",
                 IMAGE, cid, "sh", "-c",
                 "trap 'echo got TERM > /data/evidence; sync; exit 7' TERM; "
                 "echo serving; echo serving > /data/ready; while :; do sleep 1 & wait $!; done")
    assert r.returncode == 0, (r, ctrd.log_tail())
    wait_for("ready file from the guest", (data / "ready").exists)
    # the workload's stdout, through the shim (the console relay may lag the file)
    wait_for("output in the log", lambda: log.exists() and log.read_text() == "serving\n",
             timeout=60)
    ps = ctrd.ctr("task", "ps", cid).stdout.decode().split()   # runtime's ps --format json
    assert ps[0] == "PID" and ps[2].isdigit() and ps[2] == task_pid(ctrd, cid), ps
    live = ctrd.leftovers()           # positive control for the fixture's final check
    assert all(live[k] for k in ("runs", "vmms", "virtiofsd", "mounts", "states")), live
    e = ctrd.ctr("task", "exec", "--fifo-dir", ctrd.fifo, "--exec-id", "x1", cid, "sh", "-c",
                 "echo in the vm $(uname -r); ip -o link | grep -c ': '; exit 5", check=False)
    assert e.returncode == 5, e
    vm, release, links = e.stdout.decode().rsplit(maxsplit=2)
    assert vm == "in the vm" and release != os.uname().release, e
    assert release in ctrd.kernel or "cloud" in release, release
    assert links == "1", e          # --net-host in a loopback-only namespace: no network
    # containerd's binds of the host's /etc/hosts and /etc/resolv.conf: bound read-only
    f = ctrd.ctr("task", "exec", "--fifo-dir", ctrd.fifo, "--exec-id", "x3", cid, "sh", "-c",
                 "grep -E ' /etc/(hosts|resolv.conf) ' /proc/mounts; cat /etc/hosts")
    for n in ("hosts", "resolv.conf"):
        assert f" /etc/{n} virtiofs ro," in f.stdout.decode(), f
    assert Path("/etc/hosts").read_text() in f.stdout.decode(), f
    term = OnTerminal(["ctr", "--address", str(ctrd.sock), "task", "exec", "-t",
                       "--fifo-dir", str(ctrd.fifo), "--exec-id", "x2", cid, "sh", "-c",
                       "test -t 0 && test -t 1 && echo on-a-tty; exit 4"], os.environ)
    try:
        assert term.wait(timeout=300) == 4, bytes(term.out)
        assert b"on-a-tty" in term.out, bytes(term.out)
    finally:
        term.close()
    assert not (data / "evidence").exists()          # negative control: no TERM yet
    ctrd.ctr("task", "kill", cid)                    # SIGTERM, ctr's default
    wait_for("stopped task", lambda: task_status(ctrd, cid) == "STOPPED", timeout=120)
    assert (data / "evidence").read_text() == "got TERM\n"
    d = ctrd.ctr("task", "delete", cid)
    assert b"non-zero exit code 7" in d.stderr, d   # the trap's exit status
    ctrd.ctr("container", "rm", cid)
    assert ctrd.ctr("container", "ls", "-q").stdout.strip() == b""


def test_a_killed_shim_leaves_nothing(ctrd):
    """The shim SIGKILLed under a running container: containerd's cleanup
    (`containerd-shim-runc-v2 delete`, which runs the runtime's `delete
    --force`) stops the VM and removes the run; the fixture checks the
    host."""
    cid = "ctrj-orphan"
    r = ctrd.run("-d", "--null-io", IMAGE, cid, "sh", "-c", "while :; do sleep 1; done")
    assert r.returncode == 0, (r, ctrd.log_tail())
    wait_for("running task", lambda: task_status(ctrd, cid) == "RUNNING")
    live = ctrd.leftovers()
    assert live["runs"] and live["vmms"], live
    shim = processes_with_arg(f"{ctrd.sock}".encode())
    shims = [p for p in shim if Path(f"/proc/{p}/exe").resolve().name ==
             "containerd-shim-runc-v2"]
    assert len(shims) == 1, shim
    os.kill(shims[0], signal.SIGKILL)
    wait_for("stopped task", lambda: task_status(ctrd, cid) in (None, "STOPPED"), timeout=60)
    ctrd.ctr("task", "delete", "-f", cid, check=False)
    ctrd.ctr("container", "rm", cid)
