# SPDX-License-Identifier: Apache-2.0
"""Docker with ctr-jailer-runtime as an OCI runtime (`--runtime ctrj`): a real
dockerd (Debian's docker.io, its own containerd and runc shim) in a network
namespace the test creates, as test_docker.py starts it, with the runtime
registered in its daemon.json. The containers are busybox images run as
microVMs; assertions are on what the guest printed and the exit codes
docker reports, and on the host: no VMM, supervisor or run left after each
test."""
import json
import os
import subprocess
import time

import pytest

from conftest import BUILD, qemu_processes_for, runs
from test_docker import HOST_IP, Engine, busybox_image_tar, require_tools

RUNTIME = BUILD / "ctr-jailer-runtime"
pytestmark = pytest.mark.xdist_group("docker")


def supervisors(run_dir):
    """ctr-jailer processes whose environment names this test's run dir."""
    found = []
    for proc in os.listdir("/proc"):
        if not proc.isdigit():
            continue
        try:
            env = open(f"/proc/{proc}/environ", "rb").read().split(b"\0")
            exe = os.readlink(f"/proc/{proc}/exe")
        except OSError:
            continue
        if exe.endswith("/ctr-jailer") and f"CTR_JAILER_RUN_DIR={run_dir}".encode() in env:
            found.append(int(proc))
    return found


@pytest.fixture(scope="module")
def engine(kernel_ready):
    require_tools()
    e = Engine()
    e.run_dir = e.root / "ctrj-runs"
    (e.root / "daemon.json").write_text(json.dumps(
        {"runtimes": {"ctrj": {"path": str(RUNTIME)}}}))
    e.dockerd_args = ["--config-file", str(e.root / "daemon.json")]
    # Docker's own networking, inside the test's namespace: its bridge, NAT
    # and published ports
    e.dockerd_net_args = ["--ip6tables=false"]
    e.dockerd_env = {**os.environ, "CTR_JAILER_CACHE": str(kernel_ready),
                     "CTR_JAILER_RUN_DIR": str(e.run_dir),
                     "MEM_SIZE_MIB": "256", "VCPU_COUNT": "1"}
    try:
        e.start()
        e.docker("import", "-", "busybox", input=busybox_image_tar())
        e.kernel = os.readlink(kernel_ready / "kernels" / "default")
        yield e
    finally:
        e.close()


@pytest.fixture
def docker(engine):
    yield engine
    deadline = time.monotonic() + 60
    while supervisors(engine.run_dir) and time.monotonic() < deadline:
        time.sleep(0.5)
    left = supervisors(engine.run_dir), qemu_processes_for(engine.run_dir)
    for pid in left[0] + left[1]:
        os.kill(pid, 9)
    assert left == ([], []), f"supervisors, VMMs left: {left}"
    assert not runs(engine.run_dir), f"runs left: {runs(engine.run_dir)}"


def run(engine, *args, timeout=600):
    return engine.docker("run", "--runtime", "ctrj", *args, check=False, timeout=timeout)


def wait_log(engine, name, marker, timeout=300):
    deadline = time.monotonic() + timeout
    while marker not in engine.logs(name):
        assert time.monotonic() < deadline, engine.logs(name)
        time.sleep(1)


def test_docker_run_shows_the_guest_kernel_and_exit_codes(docker):
    r = run(docker, "--rm", "busybox", "uname", "-r")
    assert r.returncode == 0, r.stderr.decode() + docker.log_tail()
    release = r.stdout.decode().strip()   # the workload's output only: no notices
    assert "\n" not in release and not r.stderr.strip(), r
    assert release != os.uname().release
    assert release in docker.kernel or "cloud" in release, release
    r = run(docker, "--rm", "busybox", "sh", "-c", "echo three; exit 3")
    assert r.returncode == 3 and b"three" in r.stdout, r


def test_docker_detached_exec_logs_stop_rm(docker):
    name = "ctrj-life"
    r = run(docker, "-d", "--name", name, "busybox", "sh", "-c",
            "trap 'echo got TERM; exit 0' TERM; echo serving; "
            "while :; do sleep 1 & wait $!; done")
    assert r.returncode == 0, r.stderr.decode()
    wait_log(docker, name, "serving")
    e = docker.docker("exec", name, "sh", "-c", "echo in the vm $(uname -r); exit 5",
                      check=False)
    assert e.returncode == 5 and b"in the vm" in e.stdout, e
    assert os.uname().release.encode() not in e.stdout
    docker.docker("stop", "-t", "20", name)
    assert b"got TERM" in docker.docker("logs", name).stdout
    code = docker.docker("inspect", "-f", "{{.State.ExitCode}}", name).stdout.strip()
    assert code == b"0", code
    docker.docker("rm", name)
    assert not runs(docker.run_dir)


def test_published_port_answers_from_the_guest(docker):
    """docker run -p 8080:80: Docker's DNAT to the container's address
    reaches the guest (the VM took over the container's interface); curl
    runs in the upstream namespace the test made."""
    name = "ctrj-web"
    r = run(docker, "-d", "--name", name, "-p", "8080:80", "busybox", "sh", "-c",
            "mkdir -p /www && echo \"served by $(uname -r)\" > /www/index.html && "
            "ip -4 -o addr show eth0 && echo serving && exec httpd -f -p 80 -h /www")
    assert r.returncode == 0, r.stderr.decode()
    wait_log(docker, name, "serving")
    ip = docker.docker("inspect", "-f", "{{.NetworkSettings.IPAddress}}", name).stdout.strip()
    assert ip and ip.decode() in docker.logs(name)   # the guest has the container's address
    got = subprocess.run(["ip", "netns", "exec", docker.up, "curl", "-s", "--max-time", "5",
                          "--retry", "10", "--retry-connrefused", "--retry-delay", "1",
                          f"http://{HOST_IP}:8080/"], capture_output=True, text=True,
                         timeout=120)
    assert got.stdout.startswith("served by ") and os.uname().release not in got.stdout, got
    docker.docker("rm", "-f", name)


def test_docker_run_with_a_terminal(docker):
    """docker run -t: the engine's console socket gets a pty master; the
    workload's output reaches it."""
    r = run(docker, "--rm", "-t", "busybox", "sh", "-c", "echo tty-ok; exit 4")
    assert r.returncode == 4 and b"tty-ok" in r.stdout, r
