# SPDX-License-Identifier: Apache-2.0
"""Image layers shared, not flattened (issue 14): each layer of an image is a
read-only filesystem image of its own, cached by its diff_id and shared by
every image that has it, and the guest stacks them with overlayfs. Whiteouts
and opaque directories become overlayfs's own marks in each layer's image;
an image with more layers than the VM has drive slots has its lowest layers
merged into one image."""
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import BINARY
from test_oci import append_layer, cache, entry, make_tar, sh, timings  # noqa: F401 (cache: a fixture)


@pytest.fixture
def run(runner, cache):
    def go(image, script, options=()):
        argv = [str(BINARY), "run", "--image", image, "--memory", "256", "--cpus", "1",
                "--network", "none", "--timings", "--entrypoint", "/bin/sh", *options,
                "--", "-c", script]
        return subprocess.run(argv, env=runner.env({"CTR_JAILER_CACHE": str(cache)}),
                              capture_output=True, timeout=300)
    return go


@pytest.fixture
def layout(tmp_path, busybox_rootfs):
    """An OCI layout whose "base" tag is the busybox tree in one layer."""
    top = tmp_path / "oci"
    top.mkdir()
    lay = top / "layout"
    sh("umoci", "init", "--layout", lay)
    sh("umoci", "new", "--image", f"{lay}:base")
    bundle = top / "bundle"
    sh("umoci", "unpack", "--image", f"{lay}:base", bundle)
    root = bundle / "rootfs"
    shutil.copytree(busybox_rootfs, root, symlinks=True, dirs_exist_ok=True)
    (root / "data").mkdir()
    (root / "data/keep").write_text("kept\n")
    (root / "data/remove-me").write_text("lower layer\n")
    (root / "olddir/sub").mkdir(parents=True)
    (root / "olddir/a").write_text("a\n")
    (root / "olddir/sub/b").write_text("b\n")
    sh("umoci", "repack", "--image", f"{lay}:base", bundle)
    shutil.rmtree(bundle)
    return lay


def layer_images(cache: Path):
    d = cache / "layers"
    return sorted(p for p in d.glob("*.ext4")) if d.exists() else []


def du(paths):
    return sum(int(subprocess.run(["du", "-sB1", str(p)], capture_output=True, text=True,
                                  check=True).stdout.split()[0]) for p in paths)


def debugfs(image: Path, request: str) -> str:
    return subprocess.run(["debugfs", "-R", request, str(image)], capture_output=True,
                          text=True).stdout


LOOK = ("ls -1 /data | tr '\\n' ' '; echo; ls -1 /olddir | tr '\\n' ' '; echo; "
        "cat /olddir/new-c /data/added; test -e /data/remove-me && echo still-there || "
        "echo deleted")


def test_layers_with_whiteout_and_opaque_dir(run, layout, cache):
    image = append_layer(layout, "base", "app", make_tar([
        entry("olddir", "dir"),
        entry("olddir/new-c", data=b"c from layer 2\n"),
        entry("olddir/.wh..wh..opq"),
        entry("data", "dir"),
        entry("data/.wh.remove-me"),
        entry("data/added", data=b"added\n"),
    ]))
    r = run(image, LOOK)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.decode().splitlines()
    assert lines[0].split() == ["added", "keep"]          # remove-me whited out
    assert lines[1].split() == ["new-c"]                  # opaque: a and sub/ hidden
    assert lines[2:5] == ["c from layer 2", "added", "deleted"]
    t = timings(r.stderr)
    assert t["layer_drives"] == 2 and t["layers_merged"] == 1 and t["layers_built"] == 2
    # each layer is an image of its own; the top one holds overlayfs's marks
    images = layer_images(cache)
    assert len(images) == 2
    top = next(p for p in images if "new-c" in debugfs(p, "ls -l /olddir"))
    assert "character special" in debugfs(top, "stat /data/remove-me")
    assert "trusted.overlay.opaque" in debugfs(top, "ea_list /olddir")
    assert "keep" not in debugfs(top, "ls /data")         # only the layer's own files
    # negative control: the base alone still has what the top layer deletes
    r = run(f"oci:{layout}:base", "ls /data /olddir")
    assert r.returncode == 0, r.stderr
    assert b"remove-me" in r.stdout and b"sub" in r.stdout
    assert timings(r.stderr)["layers_built"] == 0          # the base layer is shared


def test_two_images_share_their_base_layers(run, layout, cache):
    one = append_layer(layout, "base", "one", make_tar([entry("app/one", data=b"one\n")]))
    two = append_layer(layout, "base", "two", make_tar([entry("app/two", data=b"two\n")]))
    r = run(one, "cat /app/one")
    assert r.returncode == 0 and r.stdout == b"one\n", r.stderr
    after_one = layer_images(cache)
    assert len(after_one) == 2
    r = run(two, "cat /app/two; ls /app")
    assert r.returncode == 0 and r.stdout == b"two\ntwo\n", r.stderr
    assert timings(r.stderr)["layers_built"] == 1          # only its own layer
    after_two = layer_images(cache)
    assert len(after_two) == 3                             # the base layer once
    base = [p for p in after_one if p in after_two]
    assert len(base) == 2
    # bytes on disk: the base layer's image is stored once, not per image
    total = du(after_two)
    base_bytes = max(du([p]) for p in after_one)
    assert total < 2 * base_bytes, (total, base_bytes)
    assert du([cache / "layers"]) - total < 64 * 1024     # nothing else kept there
    # a new tag of the same app builds only its new layer
    three = append_layer(layout, "one", "one-v2", make_tar([entry("app/v2", data=b"v2\n")]))
    r = run(three, "cat /app/one /app/v2")
    assert r.returncode == 0 and r.stdout == b"one\nv2\n", r.stderr
    assert timings(r.stderr)["layers_built"] == 1
    assert len(layer_images(cache)) == 4


def test_more_layers_than_drive_slots_are_merged(run, layout, cache):
    tag = "base"
    for i in range(24):   # more than the 24 virtio devices of QEMU's microvm
        files = [entry(f"stack/f{i}", data=f"{i}\n".encode())]
        if i % 5 == 4:
            files.append(entry(f"stack/.wh.f{i - 1}"))   # delete the one below
        tag = append_layer(layout, tag.split(":")[-1], f"l{i}", make_tar(files)).split(":")[-1]
    r = run(f"oci:{layout}:{tag}", "ls /stack | tr '\\n' ' '")
    assert r.returncode == 0, r.stderr
    want = [f"f{i}" for i in range(24) if not (i % 5 == 3 and i + 1 < 24)]
    assert sorted(r.stdout.decode().split()) == sorted(want)
    t = timings(r.stderr)
    assert t["layers_merged"] > 1, t
    assert t["layer_drives"] + t["layers_merged"] - 1 == 25
    assert b"share one drive" in r.stderr
    assert any(p.name.startswith("chain-") for p in layer_images(cache))


# ---- incremental root filesystem directories ------------------------------------------------

def rootfs_run(runner, cache, root, script):
    r = runner.run(["sh", "-c", script], rootfs=root, options=["--timings"],
                   env={"CTR_JAILER_CACHE": str(cache)})
    assert r.returncode == 0, r.stderr
    return r.stdout.decode(), timings(r.stderr)


def test_rootfs_change_builds_only_a_delta(runner, make_rootfs, cache):
    root = make_rootfs({"/etc/a": ("one\n", 0o644), "/etc/gone": ("x\n", 0o644),
                        "/data/big": (os.urandom(8 << 20), 0o644)})
    look = ("cat /etc/a; test -e /etc/gone && echo gone-present || echo gone-absent; "
            "cat /etc/new 2>/dev/null || echo no-new; md5sum /data/big | cut -c1-32")
    out, t = rootfs_run(runner, cache, root, look)
    big_md5 = subprocess.run(["md5sum", str(root / "data/big")], capture_output=True,
                             text=True).stdout[:32]
    assert out.split() == ["one", "gone-present", "no-new", big_md5]
    assert t["base_image_built"] is True and "layer_drives" not in t
    bases = list((cache / "base").glob("*.ext4"))
    assert len(bases) == 1
    # one file changed, one deleted, one added
    (root / "etc/a").write_text("two\n")
    (root / "etc/gone").unlink()
    (root / "etc/new").write_text("new\n")
    out, t = rootfs_run(runner, cache, root, look)
    assert out.split() == ["two", "gone-absent", "new", big_md5]
    assert t["layer_drives"] == 2 and t["layers_built"] == 1
    assert list((cache / "base").glob("*.ext4")) == bases       # the base stays as it was
    deltas = list((cache / "deltas").glob("*.ext4"))
    assert len(deltas) == 1
    delta = deltas[0]
    # the delta holds the changed entries (and their directories) only
    top = debugfs(delta, "ls /").split()
    assert "etc" in top and "data" not in top and "bin" not in top
    listing = debugfs(delta, "ls -l /etc")
    assert " a" in listing or "a\n" in listing
    assert "character special" in debugfs(delta, "stat /etc/gone")   # the deletion
    assert "passwd" not in listing
    assert delta.stat().st_blocks * 512 < bases[0].stat().st_blocks * 512 // 4
    # unchanged since: nothing is built
    out, t = rootfs_run(runner, cache, root, "cat /etc/a")
    assert out == "two\n" and t["layers_built"] == 0 and t["base_image_built"] is False


def test_rootfs_deltas_compact_into_a_new_base(runner, make_rootfs, cache):
    root = make_rootfs({"/etc/n": ("0\n", 0o644)})
    rootfs_run(runner, cache, root, "true")
    for i in range(1, 6):
        (root / "etc/n").write_text(f"{i}\n")
        out, t = rootfs_run(runner, cache, root, "cat /etc/n")
        assert out == f"{i}\n"
        if i <= 4:
            assert t["layer_drives"] == i + 1, t
    # the fifth change came after four deltas: a new full base instead
    assert "layer_drives" not in t and t["base_image_built"] is True
    assert len(list((cache / "base").glob("*.ext4"))) == 2


def test_ctrl_c_during_a_build_leaves_no_temporary_file_or_lock(runner, cache, make_rootfs):
    import fcntl
    import signal
    import time
    root = make_rootfs()
    big = root / "big"
    big.mkdir()
    for i in range(12):     # enough data that mke2fs takes a while
        (big / f"f{i}").write_bytes(os.urandom(16 << 20))
    proc = subprocess.Popen(runner.argv(["true"], rootfs=root),
                            env=runner.env({"CTR_JAILER_CACHE": str(cache)}),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not list((cache / "base").glob("*.tmp")) if (cache / "base").exists() else True:
            assert proc.poll() is None, proc.stderr.read()
            assert time.monotonic() < deadline, "the build never started"
            time.sleep(0.01)
        os.killpg(proc.pid, signal.SIGINT)      # Ctrl-C: the whole foreground group
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert b"interrupted" in err
    left = [p for p in cache.rglob("*") if p.name.endswith((".tmp", ".unpack"))]
    assert not left, left
    assert not list((cache / "base").glob("*.ext4"))
    for lock in cache.rglob("*.lock"):       # no lock is held
        with open(lock) as f:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    shutil.rmtree(big)


@pytest.mark.parametrize("quiet", [False, True])
def test_build_progress_on_a_terminal(runner, cache, make_rootfs, quiet):
    from conftest import OnTerminal
    root = make_rootfs({"/big": (os.urandom(48 << 20), 0o644)})
    argv = runner.argv(["true"], rootfs=root, options=["-q"] if quiet else [])
    term = OnTerminal(argv, runner.env({"CTR_JAILER_CACHE": str(cache)}))
    try:
        assert term.wait(timeout=300) == 0, bytes(term.out)
    finally:
        term.close()
    out = bytes(term.out)
    if quiet:
        assert b"build image of" not in out
    else:
        assert b"build image of" in out and b"MiB" in out, out


def test_build_progress_lines_when_not_a_terminal(runner, cache, make_rootfs):
    """stderr not a terminal: a base-image build that runs over a second
    writes one line when it has and one when it ends (both once); -q none;
    a quick build writes nothing (README "Progress")."""
    env = {"CTR_JAILER_CACHE": str(cache)}
    small = runner.run(["true"], rootfs=make_rootfs({"/etc/s": ("s\n", 0o644)}), env=env)
    assert small.returncode == 0, small.stderr
    assert b"build image of" not in small.stderr, small.stderr
    big = os.urandom(1 << 20) * 400  # over a second to build, even here
    for quiet in (True, False):
        root = make_rootfs({"/big": (big + str(quiet).encode(), 0o644)})
        r = runner.run(["true"], rootfs=root, options=["-q"] if quiet else [], env=env,
                       timeout=600)
        assert r.returncode == 0, r.stderr
        lines = [l for l in r.stderr.splitlines() if b"build image of" in l]
        if quiet:
            assert lines == [], r.stderr
        else:
            assert len(lines) == 2 and b"done" in lines[1] and b"MiB" in lines[1], r.stderr
            assert b"\r" not in r.stderr and b"\033" not in r.stderr
        shutil.rmtree(root)
    shutil.rmtree(cache / "base", ignore_errors=True)  # 800 MB of images
