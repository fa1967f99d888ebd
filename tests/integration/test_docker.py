# SPDX-License-Identifier: Apache-2.0
"""The seed's own workflow with a real Docker engine: the runtime image built
from packaging/Dockerfile, a user image built as the README's Getting Started
shows (examples/Dockerfile), run by docker-compose with
examples/docker-compose.least-privilege.yml.

The test starts its own dockerd inside a network namespace it creates, with a
veth uplink to an "upstream" namespace: the containers' "host network" is
that namespace, never the machine's. No registry is reachable, so the base
image (Debian bookworm, minbase, the runtime packages included) is made with
mmdebstrap and cached under /var/tmp, and the runtime image is built with
OFFLINE=1 from this tree's binary and kernel cache. Nothing is installed
here: scripts/install-deps.sh provides docker.io, docker-compose and
mmdebstrap."""
import fcntl
import hashlib
import io
import json
import os
import re
import shutil
import signal
import subprocess
import tarfile
import tempfile
import time
import uuid
from pathlib import Path

import pytest
import yaml

from conftest import BINARY, REPO, settled

# All tests of this module share one engine and its images: keep them on one
# xdist worker (`--dist loadgroup`, as the Makefile runs the suite).
pytestmark = pytest.mark.xdist_group("docker")

DOCKER = "/usr/bin/docker"        # docker.io's client, of the same release as its dockerd
DOCKERFILE = REPO / "packaging" / "Dockerfile"
EXAMPLES = REPO / "examples"
HOST_IP, UP_IP = "192.0.2.1", "192.0.2.2"
SUITE = "bookworm"
MIRRORS = [
    "deb http://deb.debian.org/debian bookworm main",
    "deb http://deb.debian.org/debian bookworm-updates main",
    "deb http://deb.debian.org/debian-security bookworm-security main",
]
SERVICE = "my-app"
WAIT = 300                        # seconds for a VM to boot and report, on a loaded machine

# The guest's workload: the image's CMD (/start.sh, "main"), or the command
# given to `docker-compose run` ("serve", "sleep").
WORKLOAD = r"""#!/bin/sh
case "${1:-main}" in
main)
	echo "workload: kernel $(uname -r)"
	env -i /bin/sh -c '. /var/environment; echo "workload: GREETING=[$GREETING]"'
	grep -q CTR_JAILER /var/environment && echo "workload: runtime settings in /var/environment"
	n=$(($(cat /data/count 2>/dev/null || echo 0) + 1))
	echo "$n" > /data/count && sync
	echo "workload: data count $n"
	exit "$EXIT_CODE"
	;;
serve)
	mkdir -p /www && echo "served from the VM, kernel $(uname -r)" > /www/index.html
	httpd -f -p 80 -h /www & pid=$!
	trap 'echo "workload: got SIGTERM"; kill $pid; exit 42' TERM
	echo "workload: serving"
	wait $pid
	;;
sleep)
	trap 'echo "workload: got SIGTERM"; exit 0' TERM
	echo "workload: sleeping"
	while :; do sleep 3600 & wait $!; done
	;;
esac
"""
GREETING = "hello from 'compose', with $dollar and  spaces"


def sh(*args, check=True, timeout=600, **kw):
    return subprocess.run([str(a) for a in args], check=check, capture_output=True,
                          timeout=timeout, **kw)


def dockerfile_arg(name):
    """Default value of `ARG name=...` in packaging/Dockerfile."""
    m = re.search(rf'^ARG {name}=("([^"]*)"|(\S*))', DOCKERFILE.read_text(), re.M)
    assert m, f"no ARG {name} in {DOCKERFILE}"
    return m.group(2) if m.group(2) is not None else m.group(3)


def require_tools():
    missing = [t for t in ("dockerd", DOCKER, "docker-compose", "mmdebstrap", "nsenter")
               if not shutil.which(t)]
    if missing:
        pytest.fail(f"missing {', '.join(missing)}: run scripts/install-deps.sh")


@pytest.fixture(scope="module")
def base_tarball():
    require_tools()
    return runtime_base_tarball()


def runtime_base_tarball():
    """Debian bookworm minbase with the runtime packages, made by mmdebstrap
    once per package list and cached under /var/tmp (test_cgroup_v2.py boots
    it as a VM)."""
    if not shutil.which("mmdebstrap"):
        pytest.fail("missing mmdebstrap: run scripts/install-deps.sh")
    packages = sorted(dockerfile_arg("RUNTIME_PACKAGES").split())
    key = hashlib.sha256(json.dumps([SUITE, "minbase", packages, MIRRORS]).encode()).hexdigest()
    path = Path(f"/var/tmp/ctr-jailer-docker-base-{key[:16]}.tar")
    with open(f"{path}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if path.exists():
            return path
        partial = Path(f"{path}.partial")
        r = subprocess.run(["mmdebstrap", "--variant=minbase", "--format=tar",
                            "--aptopt=APT::Install-Recommends \"false\"",
                            "--include=" + ",".join(packages), SUITE, str(partial), *MIRRORS],
                           capture_output=True, timeout=1800)
        if r.returncode != 0:
            partial.unlink(missing_ok=True)
            out = r.stderr.decode(errors="replace")
            if re.search(r"Could not resolve|Failed to fetch|Temporary failure|"
                         r"Connection (refused|timed out)|apt-get update failed", out):
                pytest.skip(f"mmdebstrap cannot reach the Debian mirror: {out[-500:]}")
            pytest.fail(f"mmdebstrap failed: {out[-2000:]}")
        partial.rename(path)
        for old in Path("/var/tmp").glob("ctr-jailer-docker-base-*.tar"):
            if old != path:         # made for another package list
                old.unlink(missing_ok=True)
    return path


def busybox_image_tar():
    """A `busybox` image, as the examples' `FROM busybox` expects."""
    buf = io.BytesIO()
    applets = sh("/bin/busybox", "--list").stdout.decode().split()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        def add(name, kind=tarfile.DIRTYPE, data=b"", mode=0o755, link=""):
            info = tarfile.TarInfo(name)
            info.type, info.mode, info.linkname, info.size = kind, mode, link, len(data)
            tar.addfile(info, io.BytesIO(data) if data else None)
        for d in ("bin", "etc", "tmp", "root"):
            add(d, mode=0o1777 if d == "tmp" else 0o755)
        add("bin/busybox", tarfile.REGTYPE, Path("/bin/busybox").read_bytes())
        for applet in applets:
            if applet != "busybox":
                add(f"bin/{applet}", tarfile.SYMTYPE, link="busybox", mode=0o777)
        add("etc/passwd", tarfile.REGTYPE, b"root:x:0:0:root:/root:/bin/sh\n", 0o644)
        add("etc/group", tarfile.REGTYPE, b"root:x:0:\n", 0o644)
    return buf.getvalue()


class Engine:
    """dockerd in a network namespace of its own, with an upstream namespace
    behind a veth, its data and exec roots under one /var/tmp directory."""

    def __init__(self):
        tag = uuid.uuid4().hex[:8]
        self.host, self.up, self.project = f"cjdh{tag}", f"cjdu{tag}", f"cjd{tag}"
        # short: containerd's socket lives under the exec root (108-byte limit)
        self.root = Path(tempfile.mkdtemp(prefix="ctrj-docker-", dir="/var/tmp"))
        self.sock = self.root / "docker.sock"
        self.env = {**os.environ, "DOCKER_HOST": f"unix://{self.sock}",
                    "DOCKER_BUILDKIT": "0", "COMPOSE_DOCKER_CLI_BUILD": "0"}
        self.dockerd = None
        self.dockerd_args, self.dockerd_env = [], None   # test_runtime_docker's runtime
        self.dockerd_net_args = ["--bridge=none", "--iptables=false", "--ip6tables=false",
                                 "--ip-masq=false"]
        self.netns_made = []

    # -- set up --------------------------------------------------------------
    def start(self):
        for ns in (self.host, self.up):
            sh("ip", "netns", "add", ns)
            self.netns_made.append(ns)
        sh("ip", "link", "add", "uplink", "netns", self.host, "type", "veth", "peer", "name",
           "wan", "netns", self.up)
        sh("ip", "-n", self.host, "addr", "add", f"{HOST_IP}/24", "dev", "uplink")
        sh("ip", "-n", self.up, "addr", "add", f"{UP_IP}/24", "dev", "wan")
        for ns, dev in ((self.host, "uplink"), (self.up, "wan")):
            sh("ip", "-n", ns, "link", "set", dev, "up")
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        sh("ip", "-n", self.host, "route", "add", "default", "via", UP_IP)
        # nsenter, not `ip netns exec`, which remounts /sys and hides the cgroups
        self.log = open(self.root / "dockerd.log", "wb")
        self.dockerd = subprocess.Popen(
            ["nsenter", f"--net=/var/run/netns/{self.host}", "dockerd", *self.dockerd_net_args,
             "--data-root", str(self.root / "data"), "--exec-root", str(self.root / "exec"),
             "--pidfile", str(self.root / "dockerd.pid"), "--host", f"unix://{self.sock}",
             *self.dockerd_args],
            stdout=self.log, stderr=subprocess.STDOUT, env=self.dockerd_env)
        deadline = time.monotonic() + 120
        while self.docker("version", check=False).returncode != 0:
            if self.dockerd.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"dockerd did not start: {self.log_tail()}")
            time.sleep(0.5)

    def log_tail(self):
        return (self.root / "dockerd.log").read_text(errors="replace")[-3000:]

    def docker(self, *args, check=True, timeout=900, input=None):
        r = subprocess.run([DOCKER, *map(str, args)], env=self.env, capture_output=True,
                           timeout=timeout, input=input)
        if check and r.returncode != 0:
            raise AssertionError(f"docker {' '.join(map(str, args))} failed ({r.returncode}): "
                                 f"{r.stderr.decode(errors='replace')[-3000:]}")
        return r

    def compose(self, *args, check=True, timeout=900):
        r = subprocess.run(["docker-compose", "--ansi", "never", "-p", self.project,
                            "-f", "docker-compose.yml", "-f", "docker-compose.test.yml",
                            *map(str, args)],
                           cwd=self.app, env=self.env, capture_output=True, timeout=timeout)
        if check and r.returncode != 0:
            raise AssertionError(f"docker-compose {' '.join(map(str, args))} failed: "
                                 f"{r.stderr.decode(errors='replace')[-3000:]}")
        return r

    def build_images(self, base_tarball, cache):
        # the base image, under the name the Dockerfile's FROM uses
        self.docker("import", base_tarball, dockerfile_arg("DEBIAN_IMAGE"))
        # the runtime image, offline: binary and kernel from the build context
        ctx = self.root / "context"
        ctx.mkdir()
        subprocess.run(["bash", str(REPO / "packaging/offline-context.sh"), str(ctx)],
                       env={**os.environ, "CTRJ_BINARY": str(BINARY),
                            "CTR_JAILER_CACHE": str(cache)},
                       check=True, capture_output=True)
        self.docker("build", "-q", "-f", DOCKERFILE, "--build-arg", "OFFLINE=1",
                    "-t", "ctr-jailer", ctx)
        shutil.rmtree(ctx)
        self.docker("import", "-", "busybox", input=busybox_image_tar())
        # the user's project: the README's Dockerfile stage, the least-privilege
        # Compose file, and the test's own workload and settings
        self.app = self.root / "app"
        self.app.mkdir()
        shutil.copy(EXAMPLES / "Dockerfile", self.app / "Dockerfile")
        (self.app / "start.sh").write_text(WORKLOAD)
        (self.app / "start.sh").chmod(0o755)
        compose = yaml.safe_load((EXAMPLES / "docker-compose.least-privilege.yml").read_text())
        if not Path("/dev/kvm").exists():    # as its comment says: TCG hosts drop the line
            devices = compose["services"][SERVICE]["devices"]
            devices[:] = [d for d in devices if not d.startswith("/dev/kvm")]
        (self.app / "docker-compose.yml").write_text(yaml.safe_dump(compose))
        test_settings = {"version": compose["version"], "services": {SERVICE: {"environment": {
            "GREETING": GREETING.replace("$", "$$"), "EXIT_CODE": "7",
            "MEM_SIZE_MIB": "256", "VCPU_COUNT": "1"}}}}
        (self.app / "docker-compose.test.yml").write_text(yaml.safe_dump(test_settings))
        self.compose("build")

    # -- observe -------------------------------------------------------------
    def snapshot(self):
        """Firewall rules and links of the containers' host namespace."""
        def ns(*cmd):
            return sh("ip", "netns", "exec", self.host, *cmd, check=False).stdout
        strip = lambda out: b"\n".join(l for l in out.splitlines() if not l.startswith(b"#"))
        links = sorted(l.split(b":")[1].strip().split(b"@")[0]
                       for l in sh("ip", "-n", self.host, "-o", "link").stdout.splitlines())
        return {"nft": ns("nft", "list", "ruleset"), "iptables-legacy": strip(ns("iptables-legacy-save")),
                "iptables-nft": strip(ns("iptables-nft-save")), "links": links}

    def logs(self, name):
        r = self.docker("logs", name, check=False)
        return (r.stdout + r.stderr).decode(errors="replace")

    def wait_for_log(self, name, marker, count=1, timeout=WAIT):
        deadline = time.monotonic() + timeout
        while True:
            logs = self.logs(name)
            if logs.count(marker) >= count:
                return logs
            running = self.docker("inspect", "-f", "{{.State.Running}}", name).stdout.strip()
            if running != b"true" or time.monotonic() > deadline:
                raise AssertionError(f"{marker!r} not in the logs of {name}: {logs}")
            time.sleep(0.5)

    def wait_exit(self, name, timeout=WAIT):
        return int(self.docker("wait", name, timeout=timeout).stdout.strip())

    def service_run(self):
        """A new container of the service (its CMD), run to its end."""
        self.compose("rm", "-f", "-s", SERVICE)
        self.compose("up", "-d", SERVICE)
        cid = self.compose("ps", "-q", SERVICE).stdout.decode().strip()
        code = self.wait_exit(cid)
        return cid, code, self.logs(cid)

    def one_off(self, name, *command, env=()):
        """`docker-compose run -d`: the service's settings, another command."""
        opts = [x for e in env for x in ("-e", e)]
        self.compose("run", "-d", "--name", name, *opts, SERVICE, *command)
        return name

    # -- tear down -----------------------------------------------------------
    def close(self):
        if self.dockerd and self.dockerd.poll() is None:
            ids = self.docker("ps", "-aq", check=False).stdout.split()
            if ids:
                self.docker("rm", "-f", "-v", *ids, check=False)
            self.dockerd.send_signal(signal.SIGTERM)
            try:
                self.dockerd.wait(timeout=90)
            except subprocess.TimeoutExpired:
                self.dockerd.kill()
                self.dockerd.wait()
        if self.dockerd:
            self.log.close()
        # whatever dockerd left mounted under its roots, deepest first
        mounts = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
        for m in sorted((m for m in mounts if m.startswith(str(self.root) + "/")),
                        key=len, reverse=True):
            subprocess.run(["umount", "-l", m], capture_output=True)
        subprocess.run(["rm", "-rf", "--one-file-system", str(self.root)], capture_output=True)
        for ns in self.netns_made:
            sh("ip", "netns", "del", ns, check=False)


@pytest.fixture(scope="module")
def engine(kernel_ready, base_tarball):
    e = Engine()
    try:
        e.start()
        e.build_images(base_tarball, kernel_ready)
        e.baseline = e.snapshot()
        e.kernel = os.readlink(kernel_ready / "kernels" / "default")
        yield e
    finally:
        e.close()


@pytest.fixture
def docker_env(engine):
    yield engine
    # every run, however it ended, left the host namespace as it found it
    assert settled(engine.snapshot, engine.baseline) == engine.baseline, "TAP or firewall rules left in the host namespace"


def test_cmd_output_exit_code_and_environment(docker_env):
    e = docker_env
    cid, code, logs = e.service_run()
    assert f"workload: kernel {e.kernel}\n" in logs          # the CMD ran, in the guest's kernel
    assert e.kernel != os.uname().release                   # ... which is not the host's
    assert code == 7                                        # the CMD's exit status
    assert f"workload: GREETING=[{GREETING}]\n" in logs     # compose's env, from /var/environment
    assert "runtime settings in /var/environment" not in logs
    # the env var reached the guest from the container's config, nowhere else
    config_env = json.loads(e.docker("inspect", "-f", "{{json .Config.Env}}", cid).stdout)
    assert f"GREETING={GREETING}" in config_env


def test_data_drive_survives_container_removal(docker_env):
    e = docker_env
    first, _, logs1 = e.service_run()
    second, code, logs2 = e.service_run()                   # docker rm, then a new container
    assert first != second
    assert first not in e.docker("ps", "-aq", "--no-trunc").stdout.decode()
    counts = [int(re.search(r"workload: data count (\d+)", l).group(1)) for l in (logs1, logs2)]
    assert counts[1] == counts[0] + 1, (logs1, logs2)
    assert code == 7


def test_published_port_and_docker_stop_runs_the_term_handler(docker_env):
    e = docker_env
    name = e.one_off(f"{e.project}-web", "/start.sh", "serve", env=["PUBLISH=8080:80"])
    try:
        e.wait_for_log(name, "workload: serving")

        def fetch(port):   # an HTTP client in the upstream namespace
            return sh("ip", "netns", "exec", e.up, "/usr/bin/python3", "-c",
                      "import sys, urllib.request; sys.stdout.write(urllib.request.urlopen("
                      "sys.argv[1], timeout=5).read().decode())", f"http://{HOST_IP}:{port}/",
                      check=False, timeout=60)
        deadline = time.monotonic() + 60
        while (page := fetch(8080)).returncode != 0 and time.monotonic() < deadline:
            time.sleep(1)
        unpublished = fetch(8081)
    finally:
        e.docker("stop", "-t", "60", name, timeout=180)
    assert page.stdout.decode() == f"served from the VM, kernel {e.kernel}\n", page
    assert unpublished.returncode != 0                      # negative control
    logs = e.logs(name)
    assert "workload: got SIGTERM" in logs                  # docker stop reached the workload
    assert e.wait_exit(name) == 42                          # and its status is the container's


def test_docker_kill_then_the_next_start_is_clean(docker_env):
    e = docker_env
    name = e.one_off(f"{e.project}-kill", "/start.sh", "sleep")
    e.wait_for_log(name, "workload: sleeping")
    e.docker("kill", name)
    assert e.wait_exit(name) == 137
    # SIGKILL left the TAP and the firewall rules behind: nothing could clean up
    left = e.snapshot()
    assert left != e.baseline
    assert any(link.startswith(b"cj-") for link in left["links"])
    # the next start of the container removes them, then runs normally
    e.docker("start", name)
    logs = e.wait_for_log(name, "workload: sleeping", count=2)
    assert "removed leftover run" in logs
    e.docker("stop", "-t", "60", name, timeout=180)
    assert e.wait_exit(name) == 0


def test_dockerfile_healthcheck_through_exec_latest(docker_env):
    """README's Health checks: a Dockerfile HEALTHCHECK that runs
    `ctr-jailer exec --latest` reaches the container's VM; docker's health
    follows what the guest answers (a file the test creates in the guest)."""
    e = docker_env
    compose_image = f"{e.project}_{SERVICE}"
    e.docker("build", "-q", "-t", f"{e.project}-health", "-", input=(
        f"FROM {compose_image}\n"
        "HEALTHCHECK --interval=2s --timeout=60s --retries=2 "
        "CMD ctr-jailer exec --latest -- test -f /ready\n").encode())
    name = f"{e.project}-health"
    # the least-privilege Compose file's settings, as docker run options
    svc = yaml.safe_load((e.app / "docker-compose.yml").read_text())["services"][SERVICE]
    opts = ["--network", "host", "--cap-drop", "ALL"]
    opts += [x for c in svc["cap_add"] for x in ("--cap-add", c)]
    opts += [x for d in svc["devices"] for x in ("--device", d)]
    opts += [x for o in svc["security_opt"] for x in ("--security-opt", o)]
    opts += [x for t in svc["tmpfs"] for x in ("--tmpfs", t)]
    e.docker("run", "-d", "--name", name, *opts, "-e", "MEM_SIZE_MIB=256", "-e", "VCPU_COUNT=1",
             f"{e.project}-health", "/start.sh", "sleep")
    health = lambda: json.loads(e.docker("inspect", "-f", "{{json .State.Health}}", name).stdout)
    try:
        e.wait_for_log(name, "workload: sleeping")
        deadline = time.monotonic() + WAIT
        # checks that ran while the VM booted found no run yet (125) and may
        # have made it unhealthy already: wait for one the guest answered
        answered = lambda h: h["Log"] and h["Log"][-1]["ExitCode"] != 125
        while not ((h := health())["Status"] == "unhealthy" and answered(h)) \
                and time.monotonic() < deadline:
            time.sleep(1)
        assert h["Status"] == "unhealthy", h
        assert h["Log"][-1]["ExitCode"] == 1, h      # test -f's status, from the guest
        made = e.docker("exec", name, "ctr-jailer", "exec", "--latest", "--", "touch", "/ready")
        assert made.returncode == 0
        while (h := health())["Status"] != "healthy" and time.monotonic() < deadline:
            time.sleep(1)
        assert h["Status"] == "healthy", h
        assert h["Log"][-1]["ExitCode"] == 0
    finally:
        e.docker("stop", "-t", "60", name, timeout=180, check=False)
        e.docker("rm", "-f", name, check=False)
