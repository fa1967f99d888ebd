# SPDX-License-Identifier: Apache-2.0
"""The runtime itself under hostile conditions: a reader that goes away
(SIGPIPE), image data that carries terminal escapes, and gc running
concurrently with starting runs."""
import fcntl
import hashlib
import io
import json
import os
import subprocess
import shutil
import signal
import tarfile
import threading
import time
from pathlib import Path

import pytest

from conftest import BINARY, qemu_processes_for, runs


def debugfs_cat(image, path):
    r = subprocess.run(["debugfs", "-R", f"cat {path}", str(image)], capture_output=True)
    return r.stdout


# ---- SIGPIPE ------------------------------------------------------------

# Prints past the point where the reader has gone, then records its end on a
# volume and exits with a status of its own.
CHATTY = ("i=0; while [ $i -lt 200 ]; do echo line $i of output that nobody reads; "
          "i=$((i+1)); done; sleep 2; "
          "i=0; while [ $i -lt 200 ]; do echo more $i; i=$((i+1)); done; "
          "echo reached-the-end > /store/marker; sync; exit 42")


def run_into_head(runner, args, options, with_stderr):
    """`ctr-jailer run ... | head -c 40` (`2>&1 |` with_stderr): returns
    (status, head's output, stderr)."""
    r, w = os.pipe()
    head = subprocess.Popen(["head", "-c", "40"], stdin=r, stdout=subprocess.PIPE)
    os.close(r)
    proc = subprocess.Popen(runner.argv(args, options=options), env=runner.env(),
                            stdout=w, stderr=w if with_stderr else subprocess.PIPE)
    os.close(w)
    _, stderr = proc.communicate(timeout=240)
    out, _ = head.communicate(timeout=10)
    return proc.returncode, out, stderr


@pytest.mark.parametrize("with_stderr", [False, True], ids=["stdout", "stdout+stderr"])
def test_reader_gone_run_continues_to_the_workloads_end(runner, tmp_path, with_stderr):
    vols = tmp_path / "volumes"
    status, out, stderr = run_into_head(
        runner, ["/bin/sh", "-c", CHATTY], ["--volumes-dir", str(vols), "-v", "store:/store"],
        with_stderr)
    assert len(out) == 40
    # not 141 (killed by SIGPIPE): the workload's own status
    assert status == 42, (status, stderr)
    # the workload ran to its end after its reader had gone
    assert debugfs_cat(vols / "store.ext4", "/marker") == b"reached-the-end\n"
    # teardown ran: nothing left (the runner fixture checks it too)
    assert not runs(runner.run_dir)
    assert not qemu_processes_for(runner.run_dir)


def test_programs_started_get_the_default_sigpipe(runner, tmp_path):
    """The runtime survives SIGPIPE, but what it starts must not inherit
    that: even when ctr-jailer's own caller ignores SIGPIPE, a program it
    starts runs with the default action. (QEMU ignores SIGPIPE on its own,
    so a stand-in VMM reports what it was given.)"""
    report = tmp_path / "vmm-status"
    fake = tmp_path / "fake-qemu"
    fake.write_text(f"#!/bin/sh\ncat /proc/$$/status > {report}\nexit 1\n")
    fake.chmod(0o755)
    result = subprocess.run(
        runner.argv(["/bin/true"], options=["--vmm", "qemu", "--qemu", str(fake), "--no-jail"]),
        env=runner.env(), capture_output=True, timeout=120,
        preexec_fn=lambda: signal.signal(signal.SIGPIPE, signal.SIG_IGN))
    assert report.exists(), result.stderr
    sigign = next(l for l in report.read_text().splitlines() if l.startswith("SigIgn:"))
    assert not int(sigign.split()[1], 16) & (1 << (signal.SIGPIPE - 1)), sigign
    # the stand-in ran as the VMM, and its failure (exit 1) is the runtime's
    assert result.returncode == 125, result.stderr


# ---- terminal escapes from image data ----------------------------------------

REF = "org.opencontainers.image.ref.name"
CLEAR = "\x1b[2J"
TITLE = "\x1b]0;pwned\x07"
# Bytes that act on a terminal: ESC, BEL, DEL, C1 CSI raw or UTF-8 encoded.
TERMINAL_BYTES = [b"\x1b", b"\x07", b"\x7f", b"\x9b", b"\xc2\x9b"]


def terminal_bytes_in(data: bytes):
    return [b for b in TERMINAL_BYTES if b in data]


def put_blob(layout: Path, data: bytes) -> dict:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    (layout / "blobs/sha256" / digest[7:]).write_bytes(data)
    return {"digest": digest, "size": len(data)}


def dir_layer(root: Path) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for child in sorted(root.iterdir()):
            tf.add(child, arcname=child.name)
    return buf.getvalue()


def hardlink_layer(name: str, target: str) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        ti = tarfile.TarInfo(name)
        ti.type, ti.linkname, ti.mode = tarfile.LNKTYPE, target, 0o644
        tf.addfile(ti)
    return buf.getvalue()


def add_image(layout: Path, tags, layers, config):
    """An image under each of tags, written by hand (the config is the
    attacker's; invalid UTF-8 in it is refused by the parser)."""
    descs = [put_blob(layout, layer) for layer in layers]
    cfg = {"architecture": "amd64", "os": "linux", "config": config,
           "rootfs": {"type": "layers", "diff_ids": [d["digest"] for d in descs]}}
    text = json.dumps(cfg).encode()
    manifest = {"schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                           **put_blob(layout, text)},
                "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", **d}
                           for d in descs],
                "annotations": {"org.example.note": CLEAR + TITLE}}
    mdesc = put_blob(layout, json.dumps(manifest).encode())
    index = json.loads((layout / "index.json").read_text())
    for tag in tags:
        index["manifests"].append({"mediaType": "application/vnd.oci.image.manifest.v1+json",
                                   **mdesc, "annotations": {REF: tag}})
    (layout / "index.json").write_text(json.dumps(index))


@pytest.fixture(scope="module")
def hostile_layout(tmp_path_factory, busybox_rootfs):
    layout = tmp_path_factory.mktemp("hostile-oci") / "layout"
    (layout / "blobs/sha256").mkdir(parents=True)
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (layout / "index.json").write_text('{"schemaVersion": 2, "manifests": []}')
    base = dir_layer(busybox_rootfs)
    # a command that does not exist: the guest reports it, name and all
    add_image(layout, ["ok", "tag" + CLEAR + TITLE], [base], {
        "Env": ["PATH=/bin", "EVIL=" + CLEAR + TITLE + "\x7f\u009b"],
        "Labels": {"label" + CLEAR: TITLE + " del:\x7f c1:\u009b"},
        "Cmd": ["/bin/nope" + TITLE + CLEAR],
    })
    # an Env entry that is not NAME=VALUE is refused, quoted
    add_image(layout, ["badenv"], [base], {"Env": [CLEAR + TITLE], "Cmd": ["/bin/true"]})
    # a layer entry refused at unpacking, quoted
    add_image(layout, ["badtar"], [base, hardlink_layer(
        "stolen" + CLEAR + TITLE, "../../../../../../../../etc/passwd")],
        {"Cmd": ["/bin/true"]})
    return layout


def inspect(image, cache):
    return subprocess.run([str(BINARY), "inspect", image], capture_output=True, timeout=60,
                          env={**os.environ, "CTR_JAILER_CACHE": str(cache)})


def test_inspect_output_carries_no_terminal_escapes(hostile_layout, tmp_path):
    result = inspect(f"oci:{hostile_layout}:ok", tmp_path / "cache")
    assert result.returncode == 0, result.stderr
    assert not terminal_bytes_in(result.stdout), result.stdout
    assert not terminal_bytes_in(result.stderr), result.stderr
    # still all there, as JSON escapes
    info = json.loads(result.stdout)
    assert "EVIL=" + CLEAR + TITLE + "\x7f\u009b" in info["env"]
    assert info["labels"] == {"label" + CLEAR: TITLE + " del:\x7f c1:\u009b"}
    assert info["cmd"] == ["/bin/nope" + TITLE + CLEAR]


@pytest.mark.parametrize("image,needle", [
    ("{layout}:no-such-tag", b"tags: "),           # lists the annotations' tags
    ("{layout}:badenv", b"is not NAME=VALUE"),      # quotes the Env entry
])
def test_inspect_errors_carry_no_terminal_escapes(hostile_layout, tmp_path, image, needle):
    result = inspect(image.format(layout=f"oci:{hostile_layout}"), tmp_path / "cache")
    assert result.returncode == 125
    assert needle in result.stderr, result.stderr
    assert not terminal_bytes_in(result.stderr), result.stderr
    # the hostile text is shown, escaped
    assert b"\\x1b[2J" in result.stderr


def image_run(runner, image, cache):
    argv = [str(BINARY), "run", "--image", image, "--memory", "256", "--cpus", "1",
            "--network", "none"]
    return subprocess.run(argv, env=runner.env({"CTR_JAILER_CACHE": str(cache)}),
                          capture_output=True, timeout=180)


@pytest.fixture
def private_cache(kernel_ready, tmp_path):
    """A cache of its own (hostile images unpack there), sharing the kernel
    and what is built from it."""
    c = tmp_path / "cache"
    c.mkdir()
    for sub in ("kernels", "vmlinux", "initramfs", "modules"):
        (kernel_ready / sub).mkdir(exist_ok=True)
        (c / sub).symlink_to(kernel_ready / sub)
    return c


def test_failing_runs_carry_no_terminal_escapes(runner, hostile_layout, private_cache):
    # refused on the host while unpacking: the entry's name is quoted
    result = image_run(runner, f"oci:{hostile_layout}:badtar", private_cache)
    assert result.returncode == 125, result.stderr
    assert b"stolen" in result.stderr and b"hard link" in result.stderr, result.stderr
    assert not terminal_bytes_in(result.stderr + result.stdout), result
    # refused in the guest: the command's name comes back in its messages
    result = image_run(runner, f"oci:{hostile_layout}:ok", private_cache)
    assert result.returncode == 127, result.stderr
    assert b"/bin/nope" in result.stderr, result.stderr
    assert not terminal_bytes_in(result.stderr + result.stdout), result


# ---- gc racing a starting run ---------------------------------------------------

# strace holds every flock() of the runtime for this long before it runs:
# the moment between creating the run's owner record and locking it, a few
# microseconds otherwise, becomes one a concurrent gc cannot miss. The
# binary is the one shipped; no test hook in it.
FLOCK_DELAY_US = 1_500_000


def strace_runtime(argv):
    if not shutil.which("strace"):
        pytest.fail("strace is missing: run scripts/install-deps.sh")
    return ["strace", "-o", "/dev/null", "-e", "trace=flock",
            "-e", f"inject=flock:delay_enter={FLOCK_DELAY_US}", *argv]


class GcLoop:
    """`ctr-jailer gc` over and over, as another runtime starting (or an
    operator) would run it."""
    def __init__(self, runner):
        self.runner, self.stop, self.passes, self.removed = runner, threading.Event(), 0, b""
        self.thread = threading.Thread(target=self.loop)

    def loop(self):
        while not self.stop.is_set():
            r = subprocess.run([str(BINARY), "gc"], env=self.runner.env(), capture_output=True)
            self.passes += 1
            if b"removed" in r.stderr and not r.stderr.startswith(b"ctr-jailer: 0 "):
                self.removed += r.stderr
            time.sleep(0.02)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()


@pytest.mark.parametrize("with_gc", [False, True], ids=["alone", "gc-looping"])
def test_gc_never_takes_a_starting_run(runner, with_gc):
    # the workload proves it started after gc had every chance, and the
    # status proves the run reached its end
    args = ["/bin/sh", "-c", "echo started; exit 7"]
    argv = strace_runtime(runner.argv(args))
    runner.run_dir.mkdir(parents=True, exist_ok=True)
    if with_gc:
        with GcLoop(runner) as gc:
            result = subprocess.run(argv, env=runner.env(), capture_output=True, timeout=300)
        assert gc.passes > 10
    else:
        # negative control: the strace harness alone changes nothing
        result = subprocess.run(argv, env=runner.env(), capture_output=True, timeout=300)
    assert (result.returncode, result.stdout) == (7, b"started\n"), result.stderr
    if with_gc:
        assert not gc.removed, gc.removed
    assert not runs(runner.run_dir)


def test_gc_removes_an_abandoned_staging_dir_once_old(runner):
    """A runtime killed before it published its run leaves only a staging
    directory: gc removes it once it is old (and unlocked), never while
    it may still be on its way."""
    base = runner.run_dir
    old, young = base / ".new-0123456789ab", base / ".new-ba9876543210"
    for d in (old, young):
        d.mkdir(parents=True)
        (d / "owner").write_text("1 1\n")
    long_ago = time.time() - 3600
    os.utime(old, (long_ago, long_ago))
    subprocess.run([str(BINARY), "gc"], env=runner.env(), check=True, capture_output=True)
    assert not old.exists()
    assert young.exists()
    # a held lock keeps even an old one
    os.utime(young, (long_ago, long_ago))
    with open(young / "owner") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        subprocess.run([str(BINARY), "gc"], env=runner.env(), check=True, capture_output=True)
        assert young.exists()
    subprocess.run([str(BINARY), "gc"], env=runner.env(), check=True, capture_output=True)
    assert not young.exists()
