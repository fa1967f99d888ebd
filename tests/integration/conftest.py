# SPDX-License-Identifier: Apache-2.0
"""Fixtures for integration tests: every test boots real microVMs (QEMU
microvm, TCG on these machines) and asserts on what the workload reported
from inside the guest."""
import fcntl
import json
import os
import pty
import select
import shutil
import signal
import socket
import subprocess
import tempfile
import termios
import threading
import time
import tty
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("CTRJ_BUILD", REPO / "build"))
BINARY = BUILD / "ctr-jailer"
CACHE = Path(os.environ.get("CTR_JAILER_CACHE", "/var/tmp/ctr-jailer-test-cache"))
BUSYBOX_APPLETS = [
    "sh", "echo", "cat", "ls", "id", "env", "sleep", "true", "false", "mkdir", "touch",
    "printf", "kill", "ps", "uname", "grep", "wc", "od", "stat", "rm", "test", "[", "awk", "head", "mount", "umount", "df", "sync", "dd", "blockdev",
]


def parse_probe(stdout: bytes) -> dict:
    """Lines between PROBE-BEGIN and PROBE-END, as written by probe.c."""
    text = stdout.decode("latin-1")
    assert "PROBE-BEGIN" in text and "PROBE-END" in text, f"no probe report in {stdout!r}"
    body = text.split("PROBE-BEGIN\n", 1)[1].split("PROBE-END", 1)[0]
    report: dict = {"argv": [], "env": [], "group": []}
    for line in body.splitlines():
        key, _, value = line.partition(" ")
        if key in ("argv", "env", "envfile"):
            value = bytes.fromhex(value)
        if key in ("argv", "env", "group"):
            report[key].append(value)
        else:
            report[key] = value
    return report


@pytest.fixture(scope="session")
def kernel_ready():
    if not BINARY.exists():
        pytest.fail(f"{BINARY} is missing: build first (make)")
    if not (CACHE / "kernels" / "default").exists():
        subprocess.run([BINARY, "kernel", "fetch"], check=True,
                       env={**os.environ, "CTR_JAILER_CACHE": str(CACHE)})
    return CACHE


@pytest.fixture(scope="session")
def probe_binary(tmp_path_factory):
    out = tmp_path_factory.mktemp("probe") / "probe"
    subprocess.run(["musl-gcc", "-static", "-O2", "-o", str(out),
                    str(REPO / "tests/integration/probe.c")], check=True)
    return out


@pytest.fixture(scope="session")
def busybox_rootfs(tmp_path_factory, probe_binary):
    """A small rootfs: static busybox, a probe, users for the user tests."""
    root = tmp_path_factory.mktemp("rootfs-busybox")
    (root / "bin").mkdir()
    shutil.copy("/bin/busybox", root / "bin/busybox")
    for applet in BUSYBOX_APPLETS:
        (root / "bin" / applet).symlink_to("busybox")
    shutil.copy(probe_binary, root / "probe")
    (root / "etc").mkdir()
    (root / "etc/passwd").write_text(
        "root:x:0:0:root:/root:/bin/sh\n"
        "app:x:1000:1000:app user:/home/app:/bin/sh\n")
    (root / "etc/group").write_text("root:x:0:\napp:x:1000:\nextra:x:2000:app\n")
    (root / "home/app").mkdir(parents=True)
    os.chown(root / "home/app", 1000, 1000)
    return root


@pytest.fixture
def make_rootfs(tmp_path, busybox_rootfs):
    """Copy of the busybox rootfs with extra files {path: (content, mode)}."""
    def make(files=None):
        root = tmp_path / f"rootfs-{len(list(tmp_path.glob('rootfs-*')))}"
        shutil.copytree(busybox_rootfs, root, symlinks=True)
        for path, (content, mode) in (files or {}).items():
            target = root / path.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content if isinstance(content, bytes) else content.encode())
            target.chmod(mode)
        return root
    return make


class Runner:
    def __init__(self, cache: Path, run_dir: Path, rootfs: Path):
        self.cache = cache
        self.run_dir = run_dir
        self.rootfs = rootfs

    def env(self, extra=None):
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
               "CTR_JAILER_CACHE": str(self.cache),
               "CTR_JAILER_RUN_DIR": str(self.run_dir)}
        env.update(extra or {})
        return env

    def argv(self, args, rootfs=None, options=()):
        # No network unless a test asks for it (--network tap): VM tests must
        # never create TAPs or rules outside namespaces they made themselves.
        return [str(BINARY), "run", "--rootfs", str(rootfs or self.rootfs), "--memory", "256",
                "--cpus", "1", "--network", "none", *options, "--", *args]

    def run(self, args, rootfs=None, options=(), env=None, timeout=180):
        return subprocess.run(self.argv(args, rootfs, options), env=self.env(env),
                              capture_output=True, timeout=timeout)

    def start(self, args, rootfs=None, options=(), env=None):
        return subprocess.Popen(self.argv(args, rootfs, options), env=self.env(env),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def runs(run_dir: Path):
    """Run directories under run_dir (the runtime's own dotfiles, such as its
    locks and caches, are not runs)."""
    if not run_dir.exists():
        return []
    return [p for p in run_dir.iterdir() if not p.name.startswith(".")]

def recorded_ids(run: Path):
    """The run's uid and gid, as its run record holds them (None: not yet)."""
    try:
        record = json.loads((run / "record.json").read_text())
    except (OSError, ValueError):
        return None
    return (record["uid"], record["gid"]) if "uid" in record else None



def processes_with_arg(prefix: bytes):
    """Processes (alive, not zombies) one of whose arguments starts with
    prefix."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            args = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(a.startswith(prefix) for a in args):
            found.append(int(proc.name))
    return found


def qemu_processes_for(run_dir: Path):
    """VMM processes started for runs under run_dir, alive or left over,
    jailed or not: ctr-jailer names each QEMU after its run directory
    (`-name ctr-jailer:<run_dir>/<id>`), so they are found even once that
    directory is gone. (Not through their environment: VMMs get none.)"""
    return processes_with_arg(f"ctr-jailer:{run_dir}/".encode())


class OnTerminal:
    """A command started as an interactive shell would start it: in a new
    session whose controlling terminal is a fresh pseudo-terminal, which is
    also its stdin, stdout and stderr. The terminal is raw (no echo, no line
    editing), so whatever anyone pushes into its input (TIOCSTI) waits
    there, readable with injected(), as it would for the shell."""

    def __init__(self, argv, env):
        self.master, self.slave = pty.openpty()
        tty.setraw(self.slave)
        self.name = os.ttyname(self.slave)
        self.out = bytearray()
        self._stop = False

        def controlling_terminal():
            os.setsid()
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)

        self.proc = subprocess.Popen(argv, env=env, stdin=self.slave, stdout=self.slave,
                                     stderr=self.slave, preexec_fn=controlling_terminal)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        while not self._stop:
            if select.select([self.master], [], [], 0.1)[0]:
                try:
                    self.out += os.read(self.master, 65536)
                except OSError:
                    return

    def wait_for(self, marker: bytes, timeout=120):
        deadline = time.monotonic() + timeout
        while marker not in self.out:
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise AssertionError(f"{marker!r} not seen on the terminal: {bytes(self.out)!r}")
            time.sleep(0.05)

    def wait(self, timeout=120):
        rc = self.proc.wait(timeout=timeout)
        time.sleep(0.2)  # the reader's last chunk
        return rc

    def injected(self) -> bytes:
        """What waits in the terminal's input queue."""
        os.set_blocking(self.slave, False)
        data = b""
        while True:
            try:
                chunk = os.read(self.slave, 4096)
            except BlockingIOError:
                return data
            if not chunk:
                return data
            data += chunk

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._stop = True
        self._reader.join()
        os.close(self.master)
        os.close(self.slave)


class DecoySocket:
    """A listening unix socket root can reach that belongs to no VMM (the
    kind a compromised VMM would point root at): records each connection
    and what it received. Use as a context manager."""

    def __init__(self):
        self.dir = Path(tempfile.mkdtemp(prefix="cjdecoy-", dir="/tmp"))
        self.path = self.dir / "decoy.sock"
        self.received = []  # one entry per connection
        self._srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._srv.bind(str(self.path))
        self._srv.listen(8)
        self._srv.settimeout(0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self):
        while not self._stop.is_set():
            try:
                conn, _ = self._srv.accept()
            except socket.timeout:
                continue
            conn.settimeout(1)
            try:
                self.received.append(conn.recv(4096))
            except OSError:
                self.received.append(b"")
            conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self._srv.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def settled(read, want, timeout=5.0):
    """read() until it returns want (or, want a function, until want(value)
    holds), for up to timeout s; its last value. A run's TAP ends a few ms
    after ctr-jailer exits: the teardown hands its last fd to a process of
    its own, which closes it (the kernel's removal of the device waits for
    grace periods; net/netlink.c)."""
    done = want if callable(want) else lambda v: v == want
    deadline = time.monotonic() + timeout
    got = read()
    while not done(got) and time.monotonic() < deadline:
        time.sleep(0.02)
        got = read()
    return got


def links_settled(ns: str, timeout=5.0) -> bytes:
    """`ip -o link` of namespace ns once no run's TAP (cj-...) is left, or
    after timeout s (the caller asserts on what it holds)."""
    return settled(lambda: subprocess.run(["ip", "-n", ns, "-o", "link"],
                                          capture_output=True).stdout,
                   lambda out: b"cj-" not in out, timeout)


def timings(stderr: bytes) -> dict:
    """The --timings line of a run's stderr."""
    for line in stderr.decode(errors="replace").splitlines():
        if line.startswith("{") and "vmm_exec_ms" in line:
            return json.loads(line)
    raise AssertionError(f"no --timings line in {stderr!r}")


def wait_for_output(proc, marker: bytes, timeout=120):
    """Read proc.stdout until marker appears; returns what was read."""
    buf = b""
    deadline = time.monotonic() + timeout
    os.set_blocking(proc.stdout.fileno(), False)
    while marker not in buf:
        if time.monotonic() > deadline or proc.poll() is not None:
            raise AssertionError(f"{marker!r} not seen; output so far: {buf!r}")
        chunk = proc.stdout.read()
        if chunk:
            buf += chunk
        else:
            time.sleep(0.05)
    os.set_blocking(proc.stdout.fileno(), True)
    return buf


@pytest.fixture
def runner(kernel_ready, tmp_path, busybox_rootfs):
    run_dir = tmp_path / "run"
    r = Runner(kernel_ready, run_dir, busybox_rootfs)
    yield r
    # Nothing left behind: no run directory entries, no VMM processes.
    # (the shared ".net.lock" is the runtime's own, not a leftover of a run)
    leftovers = runs(run_dir)
    procs = qemu_processes_for(run_dir)
    for pid in procs:
        os.kill(pid, signal.SIGKILL)
    assert not leftovers, f"run directory not cleaned: {leftovers}"
    assert not procs, f"VMM processes left running: {procs}"


# The longest test (a VM in a VM, minutes under TCG) goes out first, so one
# worker runs it while the other takes the rest, instead of it starting late
# and ending the run alone.
LONGEST_FIRST = ("test_cgroup_v2.py",)


def pytest_collection_modifyitems(config, items):
    items.sort(key=lambda item: item.fspath.basename not in LONGEST_FIRST)
