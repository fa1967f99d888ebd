# SPDX-License-Identifier: Apache-2.0
"""Hostile images against the unpacker's budgets and tree walks (issue 11,
points 13 and 14). The images are OCI layouts written here with tarfile and
gzip, on top of a busybox layer so that the accepted ones boot; every
refusal is checked on the one error line and on the cache directory, every
acceptance on what the workload saw inside the VM."""
import gzip
import hashlib
import io
import json
import os
import re
import subprocess
import tarfile
from pathlib import Path

import pytest

from conftest import BINARY

REF = "org.opencontainers.image.ref.name"
ZEROS_MIB = 64
MANY_FILES = 6000          # more than the 4096 entries a 16 MiB budget allows
DEEP = 2043                # levels below /d/bb: 2045 in all, the name stays < 4096 bytes
TOO_DEEP_STEPS = 3         # three chains of ~1990 levels stacked through symlinks


# ---- OCI layouts by hand -----------------------------------------------------------

def tar_bytes(add) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        add(tf)
    return buf.getvalue()


def info(name, kind=tarfile.REGTYPE, size=0, mode=0o644, target=""):
    ti = tarfile.TarInfo(name)
    ti.type, ti.size, ti.mode, ti.mtime, ti.linkname = kind, size, mode, 1700000000, target
    if kind == tarfile.DIRTYPE:
        ti.mode = 0o755
    return ti


class Zeros(io.RawIOBase):
    """n zero bytes, without holding them."""
    def __init__(self, n):
        self.left = n

    def readinto(self, b):
        k = min(len(b), self.left)
        b[:k] = bytes(k)
        self.left -= k
        return k


def write_layout(path: Path, layers, tag: str):
    """An OCI layout at path holding one image: layers is a list of
    uncompressed tar byte strings, stored gzip-compressed."""
    (path / "blobs/sha256").mkdir(parents=True, exist_ok=True)
    (path / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')

    def put(data: bytes) -> dict:
        digest = hashlib.sha256(data).hexdigest()
        (path / "blobs/sha256" / digest).write_bytes(data)
        return {"digest": "sha256:" + digest, "size": len(data)}

    descs, diff_ids = [], []
    for tar in layers:
        diff_ids.append("sha256:" + hashlib.sha256(tar).hexdigest())
        descs.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                      **put(gzip.compress(tar, compresslevel=6, mtime=0))})
    config = {"architecture": "amd64", "os": "linux",
              "config": {"Env": ["PATH=/bin"]},
              "rootfs": {"type": "layers", "diff_ids": diff_ids}}
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                           **put(json.dumps(config).encode())},
                "layers": descs}
    index = {"schemaVersion": 2, "manifests": [
        {"mediaType": "application/vnd.oci.image.manifest.v1+json",
         **put(json.dumps(manifest).encode()), "annotations": {REF: tag}}]}
    (path / "index.json").write_text(json.dumps(index))
    return f"oci:{path}:{tag}"


# ---- the layers --------------------------------------------------------------------

def busybox_layer(root: Path) -> bytes:
    return tar_bytes(lambda tf: tf.add(root, arcname="."))


def zeros_layer() -> bytes:
    """A 64 MiB file of zeros: the gzip blob is about 64 KiB."""
    def add(tf):
        tf.addfile(info("zeros", size=ZEROS_MIB << 20), Zeros(ZEROS_MIB << 20))
    return tar_bytes(add)


def many_files_layer() -> bytes:
    def add(tf):
        tf.addfile(info("many", tarfile.DIRTYPE))
        for i in range(MANY_FILES):
            tf.addfile(info(f"many/{i}"), io.BytesIO(b""))
    return tar_bytes(add)


def chain(levels: int, name="a") -> str:
    return "/".join([name] * levels)


# The deep chain starts with "d/bb" so that every path length below it is
# odd: mke2fs 1.47.0 overflows its path buffer on a path of exactly 2040
# bytes (see base.c), which a chain of one-letter names reaches at 1020
# levels; this test is about the tree walks, not about that.
DEEP_DIR = "d/bb/" + chain(DEEP)


def deep_lower_layer() -> bytes:
    def add(tf):
        tf.addfile(info("d/lower-top", size=5), io.BytesIO(b"lower"))
        tf.addfile(info(DEEP_DIR + "/old", size=5), io.BytesIO(b"lower"))
    return tar_bytes(add)


def deep_upper_layer() -> bytes:
    """The same chain again (so the opaque directory's walk goes all the way
    down it), a new file at its bottom and an opaque whiteout at its top."""
    def add(tf):
        tf.addfile(info(DEEP_DIR, tarfile.DIRTYPE))
        tf.addfile(info(DEEP_DIR + "/new", size=5), io.BytesIO(b"upper"))
        tf.addfile(info("d/.wh..wh..opq"))
    return tar_bytes(add)


def mke2fs_overflow_layer() -> bytes:
    """One directory whose path is 2039 bytes: mke2fs -d builds "/" + path,
    2040 bytes, exactly its buffer, and writes its NUL past the end."""
    path = "/".join(chr(ord("a") + i) * 254 for i in range(8))
    assert len(path) == 2039
    return tar_bytes(lambda tf: tf.addfile(info(path, tarfile.DIRTYPE)))


def too_deep_layer() -> bytes:
    """Deeper than any one name can reach: each chain continues the one
    before it through a symlink to its bottom, about 1990 levels a step."""
    step = 1990

    def add(tf):
        bottom = "t/bb/" + chain(step)          # odd path lengths, as above
        tf.addfile(info(bottom + "/x", size=1), io.BytesIO(b"x"))
        for i in range(1, TOO_DEEP_STEPS):
            tf.addfile(info(f"s{i}", tarfile.SYMTYPE, target="/" + bottom))
            bottom = f"s{i}/" + chain(step, "c")
            tf.addfile(info(bottom + "/x", size=1), io.BytesIO(b"x"))
    return tar_bytes(add)


# ---- fixtures ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def images(tmp_path_factory, busybox_rootfs):
    top = tmp_path_factory.mktemp("sec-images")
    base = busybox_layer(busybox_rootfs)
    zeros, many = zeros_layer(), many_files_layer()
    return {
        "bombs": write_layout(top / "bombs", [base, zeros, many], "bombs"),
        "many": write_layout(top / "many", [base, many], "many"),
        "deep": write_layout(top / "deep", [base, deep_lower_layer(), deep_upper_layer()],
                             "deep"),
        "too-deep": write_layout(top / "too-deep", [base, too_deep_layer()], "too-deep"),
        "mke2fs": write_layout(top / "mke2fs", [base, mke2fs_overflow_layer()], "mke2fs"),
    }


@pytest.fixture
def cache(kernel_ready, tmp_path):
    """A private cache (so the image is unpacked here), sharing the kernel,
    initramfs and modules image with the other tests."""
    c = tmp_path / "cache"
    c.mkdir()
    for sub in ("kernels", "vmlinux", "initramfs", "modules"):
        (kernel_ready / sub).mkdir(exist_ok=True)
        (c / sub).symlink_to(kernel_ready / sub)
    yield c
    # rm copes with trees deeper than PATH_MAX that a failed unpack left
    subprocess.run(["rm", "-rf", "--one-file-system", str(c)], check=False)


@pytest.fixture
def run(runner, cache):
    def go(image, args, options=(), env=None, timeout=300):
        argv = [str(BINARY), "run", "--image", image, "--memory", "256", "--cpus", "1",
                "--network", "none", "--entrypoint", "/bin/sh", *options, "--", "-c", args]
        e = runner.env({"CTR_JAILER_CACHE": str(cache), **(env or {})})
        return subprocess.run(argv, env=e, capture_output=True, timeout=timeout)
    return go


PROGRESS = re.compile(r"ctr-jailer: (unpack|build|pull)[^:]*( done| failed)?: [0-9.]+ "
                      r"(B|KiB|MiB|GiB|files)\b")


def error_lines(stderr: bytes):
    """What the run said, but the TCG notice and the progress lines of
    steps that took over a second (a slow machine's unpack of a deep tree)."""
    return [l for l in stderr.decode(errors="replace").splitlines()
            if l and not l.startswith("ctr-jailer: the KVM here") and not PROGRESS.match(l)]


def cache_leftovers(cache: Path):
    """What an image left in the cache besides its lock files: a refused
    image must leave no tree, no temporary and no filesystem image. (Not
    recursive: a leftover tree may be deeper than any walk in Python.)"""
    images = cache / "images"
    found = []
    for d in (images, images / "v1"):
        if d.is_dir():
            found += [f"{p.relative_to(images)}" for p in d.iterdir()
                      if not p.name.endswith(".lock") and p != images / "v1"]
    return sorted(found)


def images_built(cache: Path):
    """Flattened images by kind, and "layer" for each layer image."""
    return sorted([p.name.split("-")[0] for p in (cache / "images").rglob("*.ext4")] +
                  ["layer" for p in (cache / "layers").glob("*.ext4")])


# ---- point 13: the budget ----------------------------------------------------------

@pytest.mark.parametrize("how", ["env", "flag"])
def test_gzip_bomb_stops_at_the_byte_budget(run, images, cache, how):
    options, env = (["--max-image-size", "16M"], None) if how == "flag" else \
        ((), {"CTR_JAILER_MAX_IMAGE_SIZE": "16M"})
    result = run(images["bombs"], "true", options=options, env=env)
    lines = error_lines(result.stderr)
    # nothing half-unpacked in the cache: no tree, no temporary, no image
    assert cache_leftovers(cache) == [], (cache_leftovers(cache), result.returncode, lines)
    assert len(lines) == 1, (result.returncode, lines)
    assert "16 MiB" in lines[0] and "--max-image-size" in lines[0], lines
    assert result.returncode == 125, lines


def test_inode_bomb_stops_at_the_entry_budget(run, images, cache):
    result = run(images["many"], "true", env={"CTR_JAILER_MAX_IMAGE_SIZE": "16M"})
    lines = error_lines(result.stderr)
    assert cache_leftovers(cache) == [], (cache_leftovers(cache), result.returncode, lines)
    assert len(lines) == 1, (result.returncode, lines)
    assert "4096" in lines[0] and "--max-image-size" in lines[0], lines
    assert result.returncode == 125, lines


def test_image_within_the_budget_unpacks(run, images, cache):
    """Negative control: the same bombs, with a budget above them, run."""
    result = run(images["bombs"], "stat -c %s /zeros; ls /many | wc -l",
                 options=["--max-image-size", "256M"])
    assert result.returncode == 0, error_lines(result.stderr)
    assert result.stdout.split()[:2] == [str(ZEROS_MIB << 20).encode(),
                                         str(MANY_FILES).encode()]
    assert images_built(cache) == ["layer"] * 3   # base, zeros, many: one image each
    assert not list(cache.rglob("*.unpack"))


def test_default_budget_follows_the_cache_free_space(runner, images, kernel_ready, tmp_path):
    """No --max-image-size: the budget is 90% of what the cache's file system
    has free (here a 48 MiB tmpfs in a private mount namespace), so the
    64 MiB file is refused before the disk fills, and nothing is left."""
    cache = tmp_path / "small-cache"
    cache.mkdir()
    links = " ".join(f"ln -s {kernel_ready / sub} {cache / sub};"
                     for sub in ("kernels", "vmlinux", "initramfs", "modules"))
    script = (f"mount -t tmpfs -o size=48m ctrj-test {cache} && {links} "
              f"{BINARY} run --image {images['bombs']} --network none -- /bin/true; "
              f"echo rc=$?; ls -A {cache}/layers")
    result = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                            env=runner.env({"CTR_JAILER_CACHE": str(cache)}),
                            capture_output=True, timeout=300)
    out = result.stdout.decode().split()
    lines = error_lines(result.stderr)
    assert "rc=125" in out, (out, lines)
    assert [f for f in out[out.index("rc=125") + 1:] if not f.endswith(".lock")] == [], out
    assert len(lines) == 1 and "90% of the free space" in lines[0], lines
    assert "--max-image-size" in lines[0], lines


def test_budget_option_is_validated(run, images, cache):
    result = run(images["bombs"], "true", options=["--max-image-size", "lots"])
    lines = error_lines(result.stderr)
    assert result.returncode == 125 and len(lines) == 1, lines
    assert "--max-image-size" in lines[0] and "'lots'" in lines[0], lines
    assert cache_leftovers(cache) == []


# ---- point 14: deep trees ----------------------------------------------------------

def test_opaque_whiteout_over_a_deep_chain(run, images):
    """A 2045-level chain in a lower layer, the same chain again in the
    upper layer with an opaque whiteout at its top: the walk reaches the
    bottom (base 0181444 recursed with a PATH_MAX buffer per level and
    crashed), the lower files are gone, the upper one is there."""
    bottom = "/" + DEEP_DIR
    script = (f"test -e /d/lower-top && echo top-present || echo top-absent; "
              f"test -e {bottom}/old && echo old-present || echo old-absent; "
              f"cat {bottom}/new; echo")
    result = run(images["deep"], script)
    assert result.returncode == 0, (result.returncode, error_lines(result.stderr))
    assert result.stdout.split()[:3] == [b"top-absent", b"old-absent", b"upper"]


def test_tree_deeper_than_the_bound_is_refused_and_removed(run, images, cache):
    """About 5970 levels, stacked through symlinks: more than the 4096 the
    image is built from. One line naming the bound, and the tree (whose
    paths are longer than PATH_MAX) is removed: base 0181444's nftw could
    neither read nor remove it."""
    result = run(images["too-deep"], "true")
    lines = error_lines(result.stderr)
    assert cache_leftovers(cache) == [], (result.returncode, lines)
    assert len(lines) == 1, (result.returncode, lines)
    assert "deeper than 4096 levels" in lines[0], lines
    assert result.returncode == 125, lines


def test_path_that_overflows_mke2fs_is_refused(run, images, cache):
    """mke2fs 1.47.0 writes one byte past its path buffer for a path of
    exactly 2040 bytes ("realloc(): invalid next size": a heap corruption in
    a root process, steered by image names). Refused before mke2fs runs."""
    result = run(images["mke2fs"], "true")
    lines = error_lines(result.stderr)
    assert cache_leftovers(cache) == [], (result.returncode, lines)
    assert len(lines) == 1, (result.returncode, lines)
    assert "2039 bytes long" in lines[0] and "mke2fs" in lines[0], lines
    assert result.returncode == 125, lines
