# SPDX-License-Identifier: Apache-2.0
"""The cache (issue 14): `system df` matches du, `system prune` never removes
what a live run uses, `--cache-max` evicts the least recently used entries,
and copies of one kernel share one vmlinux and one modules image.

Each test has a cache of its own (prune --all on the shared test cache would
take every other test's images away); its kernel is the shared cache's,
reached through a symlink, which prune never follows."""
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from conftest import BINARY, CACHE, Runner, wait_for_output


@pytest.fixture
def private(kernel_ready, tmp_path, make_rootfs):
    cache = tmp_path / "cache"
    (cache / "kernels").mkdir(parents=True)
    target = os.readlink(CACHE / "kernels" / "default")
    (cache / "kernels" / target).symlink_to(CACHE / "kernels" / target)
    (cache / "kernels" / "default").symlink_to(target)
    r = Runner(cache, tmp_path / "run", make_rootfs())
    yield r
    shutil.rmtree(tmp_path, ignore_errors=True)


def system(runner, *args):
    r = subprocess.run([str(BINARY), "system", *args], env=runner.env(), capture_output=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    return r.stdout.decode()


def df(runner):
    return json.loads(system(runner, "df", "--format", "json"))


def kind(usage, name):
    return next(k for k in usage["kinds"] if k["kind"] == name)


def du(path):
    return int(subprocess.run(["du", "-sB1", str(path)], capture_output=True, check=True,
                              text=True).stdout.split()[0])


def bases(runner):
    return sorted(p.name for p in (runner.cache / "base").glob("*.ext4"))


def test_df_matches_du(private):
    r = private.run(["true"])
    assert r.returncode == 0, r.stderr
    usage = df(private)
    assert usage["total"] == du(private.cache)
    for name, folder in (("base", "base"), ("vmlinux", "vmlinux"), ("initramfs", "initramfs"),
                         ("modules", "modules")):
        entries = [p for p in (private.cache / folder).iterdir()
                   if p.name not in ("ids", "lines") and
                   not p.name.endswith((".lock", ".manifest", ".stack"))]
        assert kind(usage, name)["entries"] == len(entries), name
        assert kind(usage, name)["bytes"] == sum(du(p) for p in entries), name
        assert kind(usage, name)["entries"] >= 1, name
    assert kind(usage, "base")["in_use"] == 0      # no live run


def test_prune_spares_what_a_live_run_uses(private, make_rootfs):
    # an image no run uses (negative control): prune --all removes it
    other = make_rootfs({"/etc/other": ("x\n", 0o644)})
    assert private.run(["true"], rootfs=other).returncode == 0
    assert len(bases(private)) == 1
    proc = private.start(["sh", "-c", "echo run-started; sleep 6; cat /etc/marker; exit 7"],
                         rootfs=make_rootfs({"/etc/marker": ("still-readable\n", 0o644)}))
    try:
        wait_for_output(proc, b"run-started")
        assert len(bases(private)) == 2
        usage = df(private)
        assert kind(usage, "base")["in_use"] == 1
        assert kind(usage, "vmlinux")["in_use"] == 1
        snaps = sorted((private.cache / "snapshots").glob("*/vmstate"))
        # the boot snapshot the live run restored (QEMU makes one per shape)
        assert kind(usage, "snapshots")["in_use"] == len(snaps) == 1
        system(private, "prune", "--all")
        assert all(p.exists() for p in snaps), "prune removed the live run's snapshot"
        left = bases(private)
        assert len(left) == 1, "prune --all removed the live run's base image or kept the other"
        assert (private.cache / "vmlinux").exists() and any(
            p.name != "ids" for p in (private.cache / "vmlinux").iterdir())
        out, err = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 7, err
    assert b"still-readable" in out
    # the run is over: now it goes, and so does every other entry
    system(private, "prune", "--all")
    assert bases(private) == []
    usage = df(private)
    assert all(k["entries"] == 0 for k in usage["kinds"] if k["prunable"]), usage


def test_prune_keeps_recent_entries(private):
    assert private.run(["true"]).returncode == 0
    system(private, "prune")                 # used just now: kept
    assert len(bases(private)) == 1
    old = time.time() - 2 * 24 * 3600
    for p in (private.cache / "base").glob("*.ext4"):
        os.utime(p, (old, old))
    system(private, "prune")                 # unused for two days: removed
    assert bases(private) == []


def test_cache_max_evicts_least_recently_used(private, make_rootfs):
    trees = [make_rootfs({"/etc/n": (f"{i}\n", 0o644)}) for i in range(3)]
    built = []
    for t in trees:
        assert private.run(["true"], rootfs=t).returncode == 0
        built.append(next(b for b in bases(private) if b not in built))
        time.sleep(1.1)
    oldest = private.cache / "base" / built[0]
    cap = du(private.cache) - du(oldest) // 2
    r = private.run(["true"], rootfs=trees[2], options=["--cache-max", str(cap // 1024) + "K"])
    assert r.returncode == 0, r.stderr
    assert bases(private) == sorted(built[1:]), "the least recently used base should go first"
    assert du(private.cache) <= cap


def test_kernel_copies_share_one_vmlinux_and_modules_image(private, tmp_path):
    target = os.readlink(CACHE / "kernels" / "default")
    tree = CACHE / "kernels" / target
    copies = []
    for i in range(2):
        k = tmp_path / f"k{i}" / "vmlinuz"
        m = tmp_path / f"k{i}" / target
        k.parent.mkdir()
        shutil.copy(tree / "boot" / f"vmlinuz-{target}", k)
        subprocess.run(["cp", "-a", str(tree / "lib" / "modules" / target), str(m)], check=True)
        copies.append((k, m))
    for k, m in copies:
        r = private.run(["true"], options=["--kernel", str(k), "--modules", str(m)])
        assert r.returncode == 0, r.stderr
    usage = df(private)
    assert kind(usage, "vmlinux")["entries"] == 1
    assert kind(usage, "modules")["entries"] == 1
    # negative control: a kernel with other bytes is another entry
    k, m = copies[0]
    with open(k, "ab") as f:
        f.write(b"\0" * 4096)
    r = private.run(["true"], options=["--kernel", str(k), "--modules", str(m)])
    assert r.returncode == 0, r.stderr
    assert kind(df(private), "vmlinux")["entries"] == 2


def test_snapshots_listed_and_pruned_unless_locked(private):
    """Boot snapshots are a kind of their own in df; prune --all removes an
    unused one but never one whose build lock is held (being taken)."""
    import fcntl
    shape = ["--memory", "128", "--cpus", "1", "--network", "none"]
    r = subprocess.run([str(BINARY), "snapshot", "prepare", *shape], env=private.env(),
                       capture_output=True, timeout=600)
    assert r.returncode == 0, r.stderr
    snap = Path(r.stdout.decode().strip()).parent
    assert snap.parent == private.cache / "snapshots"
    usage = df(private)
    assert kind(usage, "snapshots")["prunable"]
    assert kind(usage, "snapshots")["entries"] == 1
    assert kind(usage, "snapshots")["bytes"] == du(snap) > 1 << 20
    assert "snapshots" in system(private, "df")
    with open(snap / "lock", "a") as lock:          # a snapshot being taken
        fcntl.flock(lock, fcntl.LOCK_EX)
        assert kind(df(private), "snapshots")["in_use"] == 1
        system(private, "prune", "--all")
        assert (snap / "vmstate").exists(), "prune removed a snapshot being taken"
    system(private, "prune", "--all")                # lock let go: it goes
    assert not snap.exists()
    assert kind(df(private), "snapshots")["entries"] == 0
