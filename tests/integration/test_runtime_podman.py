# SPDX-License-Identifier: Apache-2.0
"""Podman with ctr-jailer-runtime as its OCI runtime (`podman --runtime
<build>/ctr-jailer-runtime`): Debian's podman and conmon, with their own
root, runroot, tmpdir, containers.conf and storage.conf (vfs, cgroupfs,
events to a file, netavark networking), every podman command run inside a
network namespace the test creates (its bridge, NAT rules and container
namespaces live there). conmon drives the runtime: create with a pid file,
start, state, exec --detach, kill, delete; it reaps the supervisor as the
container's init. Assertions are on what the guest printed or wrote, the
exit codes podman reports, and the host: no supervisor, VMM, virtiofsd,
run, runtime state or network namespace left."""
import json
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from conftest import BUILD, processes_with_arg, qemu_processes_for, runs
from test_docker import busybox_image_tar
from test_runtime_docker import wait_log

RUNTIME = BUILD / "ctr-jailer-runtime"
pytestmark = pytest.mark.xdist_group("podman")


def require_tools():
    missing = [t for t in ("podman", "conmon", "nsenter") if not shutil.which(t)]
    missing += [p for p in ("/usr/lib/podman/netavark",) if not os.path.exists(p)]
    if missing:
        pytest.fail(f"missing {', '.join(missing)}: run scripts/install-deps.sh")


def processes_in(run_dir):
    """Processes (alive) whose environment names this run dir: supervisors,
    relays of exec; zombies have no environment to read."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            env = (proc / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"CTR_JAILER_RUN_DIR={run_dir}".encode() in env and int(proc.name) != os.getpid():
            found.append(int(proc.name))
    return found


def links(netns):
    r = subprocess.run(["ip", "-n", netns, "-o", "link"],
                       capture_output=True, text=True, check=True)
    return sorted(line.split(":")[1].strip().split("@")[0] for line in r.stdout.splitlines())


class Podman:
    """podman in a network namespace of its own; its storage, state and
    configuration in one directory under /tmp."""

    def __init__(self, cache):
        self.netns = f"cjpm{uuid.uuid4().hex[:8]}"
        self.root = Path(tempfile.mkdtemp(prefix="ctrj-podman-", dir="/tmp"))
        self.run_dir = self.root / "runs"
        # the environment conmon gives the runtime: podman passes it none of its own
        runtime_env = [f"PATH={os.environ.get('PATH', '/usr/sbin:/usr/bin:/sbin:/bin')}",
                       f"CTR_JAILER_CACHE={cache}", f"CTR_JAILER_RUN_DIR={self.run_dir}",
                       "MEM_SIZE_MIB=256", "VCPU_COUNT=1"]
        (self.root / "containers.conf").write_text(
            "[network]\nnetwork_backend = \"netavark\"\n"
            "[engine]\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\n"
            f"events_logfile_path = \"{self.root}/events.log\"\n"
            # podman passes --log and --log-format=json to the runtimes named here
            "runtime_supports_json = [\"crun\", \"runc\", \"ctr-jailer-runtime\"]\n"
            f"conmon_env_vars = {json.dumps(runtime_env)}\n")
        (self.root / "storage.conf").write_text(
            f"[storage]\ndriver = \"vfs\"\nrunroot = \"{self.root}/runroot\"\n"
            f"graphroot = \"{self.root}/storage\"\n")
        self.env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
                    "HOME": str(self.root), "CONTAINERS_CONF": str(self.root / "containers.conf"),
                    "CONTAINERS_STORAGE_CONF": str(self.root / "storage.conf")}
        self.made_netns = False

    def start(self):
        subprocess.run(["ip", "netns", "add", self.netns], check=True)
        self.made_netns = True
        subprocess.run(["ip", "-n", self.netns, "link", "set", "lo", "up"], check=True)
        self.podman("import", "-", "busybox", input=busybox_image_tar())

    def podman(self, *args, check=True, timeout=600, input=None):
        r = subprocess.run(
            ["nsenter", f"--net=/run/netns/{self.netns}", "podman", "--root",
             str(self.root / "storage"), "--runroot", str(self.root / "runroot"), "--tmpdir",
             str(self.root / "tmp"), "--network-config-dir", str(self.root / "networks"),
             "--runtime", str(RUNTIME), *map(str, args)],
            env=self.env, capture_output=True, timeout=timeout, input=input)
        if check and r.returncode != 0:
            raise AssertionError(f"podman {' '.join(map(str, args))} failed ({r.returncode}): "
                                 f"{r.stderr.decode(errors='replace')[-3000:]}")
        return r

    def logs(self, name):
        r = self.podman("logs", name, check=False)
        return (r.stdout + r.stderr).decode(errors="replace")

    def close(self):
        try:
            self.podman("rm", "-af", "-t", "0", check=False, timeout=300)
        finally:
            for pid in processes_in(self.run_dir) + qemu_processes_for(self.run_dir):
                os.kill(pid, 9)
            mounts = [line.split()[4] for line in open("/proc/self/mountinfo")]
            for m in sorted((m for m in mounts if m.startswith(f"{self.root}/")), reverse=True):
                subprocess.run(["umount", "-l", m], check=False)
            if self.made_netns:
                subprocess.run(["ip", "netns", "del", self.netns], check=False)
            shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="module")
def engine(kernel_ready):
    require_tools()
    p = Podman(kernel_ready)
    try:
        p.start()
        p.kernel = os.readlink(kernel_ready / "kernels" / "default")
        yield p
    finally:
        p.close()


def podman_netns():
    return sorted(n for n in os.listdir("/run/netns") if n.startswith("netns-"))


def runtime_state():
    """Containers' state under the runtime's default --root: podman passes
    the runtime none."""
    state = Path("/run/ctr-jailer-runtime")
    return sorted(d.name for d in state.iterdir()) if state.exists() else []


@pytest.fixture
def podman(engine):
    before = links(engine.netns), podman_netns(), runtime_state()
    yield engine
    deadline = time.monotonic() + 60
    while processes_in(engine.run_dir) and time.monotonic() < deadline:
        time.sleep(0.5)
    left = (processes_in(engine.run_dir), qemu_processes_for(engine.run_dir),
            processes_with_arg(f"--socket-path={engine.run_dir}/".encode()))
    for pid in left[0] + left[1] + left[2]:
        os.kill(pid, 9)
    assert left == ([], [], []), f"supervisors, VMMs, virtiofsd left: {left}"
    assert not runs(engine.run_dir), f"runs left: {runs(engine.run_dir)}"
    # no bridge, veth or container namespace (where the VM's TAP was) and
    # no runtime state left: podman0 goes with its last container
    assert (links(engine.netns), podman_netns(), runtime_state()) == before


def run(engine, *args, timeout=600, input=None):
    return engine.podman("run", *args, check=False, timeout=timeout, input=input)


def test_podman_run_shows_the_guest_kernel_and_exit_code(podman):
    r = run(podman, "--rm", "busybox", "sh", "-c", "uname -r; exit 3")
    assert r.returncode == 3, r.stderr.decode()
    release = r.stdout.decode().strip()   # the workload's output only: no notices
    assert "\n" not in release and not r.stderr.strip(), r   # warnings: in --log
    assert release != os.uname().release
    assert release in podman.kernel or "cloud" in release, release


def test_podman_detached_exec_logs_network_stop_rm(podman):
    """One VM: podman run -d with a host directory volume and podman's
    bridge network; exec (its output and status, -t, -i, --user, -e, -w),
    the guest's httpd
    reached from the test's namespace at the container's address, logs,
    a graceful stop (the workload's TERM trap writes to the volume), rm."""
    name, data = "ctrj-life", podman.root / "data"
    data.mkdir()
    r = run(podman, "-d", "--name", name, "-v", f"{data}:/data", "busybox", "sh", "-c",
            "trap 'echo got TERM; echo \"stopped in $(uname -r)\" > /data/stopped; exit 0' TERM; "
            "mkdir /www && echo \"served by $(uname -r)\" > /www/index.html && "
            "httpd -p 80 -h /www && echo serving; while :; do sleep 1 & wait $!; done")
    assert r.returncode == 0, r.stderr.decode()
    wait_log(podman, name, "serving")
    e = podman.podman("exec", name, "sh", "-c", "echo in the vm $(uname -r); exit 5",
                      check=False)
    assert e.returncode == 5 and e.stdout.decode() == f"in the vm {podman.kernel}\n", e
    # -t: a pty through the console socket; -i: stdin; --user, -e, -w
    e = podman.podman("exec", "-t", name, "sh", "-c", "tty; exit 4", check=False)
    assert e.returncode == 4 and e.stdout.startswith(b"/dev/pts/"), e
    e = podman.podman("exec", "-i", "--user", "1:2", "-e", "V=v1", "-w", "/tmp", name, "sh",
                      "-c", "read line; echo $line $(id -u):$(id -g) $V $(pwd)",
                      input=b"from-stdin\n")
    assert e.stdout == b"from-stdin 1:2 v1 /tmp\n", e
    ip = podman.podman("inspect", "-f", "{{.NetworkSettings.IPAddress}}", name).stdout
    got = subprocess.run(["nsenter", f"--net=/run/netns/{podman.netns}", "curl", "-s",
                          "--max-time", "5", "--retry", "10", "--retry-connrefused",
                          "--retry-delay", "1", f"http://{ip.decode().strip()}/"],
                         capture_output=True, text=True, timeout=120)
    assert got.stdout == f"served by {podman.kernel}\n", got
    assert not (data / "stopped").exists()            # negative control: not before stop
    podman.podman("stop", "-t", "20", name)
    assert (data / "stopped").read_text() == f"stopped in {podman.kernel}\n"
    logs = podman.logs(name)
    assert "serving" in logs and "got TERM" in logs, logs
    code = podman.podman("inspect", "-f", "{{.State.ExitCode}}", name).stdout.strip()
    assert code == b"0", code
    podman.podman("rm", name)
    assert podman.podman("ps", "-aq").stdout.strip() == b""


def test_podman_run_interactive_terminal(podman):
    """podman run -i -t: conmon's console socket gets the pty master; its
    slave is the guest workload's terminal (through the agent), its input
    what the test typed."""
    r = run(podman, "--rm", "-i", "-t", "busybox", "sh", "-c",
            "tty; read line; echo \"got $line\"; exit 5", input=b"typed\n")
    assert r.returncode == 5, r
    lines = r.stdout.decode().splitlines()
    # the guest terminal's echo of the input may come first
    assert any(x.startswith("/dev/pts/") for x in lines) and "got typed" in lines, r
