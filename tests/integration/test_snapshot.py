# SPDX-License-Identifier: Apache-2.0
"""Boot snapshots (QEMU): a run restores the snapshot of its machine shape
and behaves as a cold boot does; restored guests share no identity; the
snapshot holds nothing of the run that made it. Each test uses a cache of
its module (the shared kernel, its own snapshots) and asserts on what the
workload saw: /proc/cmdline carries ctrj.snap=1 only in a restored guest."""
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import BINARY, Runner, wait_for_output
from test_network import World, net_rootfs, netprobe  # noqa: F401 (fixtures)

RESTORED = b"ctrj.snap=1"


@pytest.fixture(scope="module")
def snapcache(kernel_ready, tmp_path_factory):
    cache = tmp_path_factory.mktemp("snapcache")
    (cache / "kernels").symlink_to(kernel_ready / "kernels")
    yield cache
    shutil.rmtree(cache, ignore_errors=True)


@pytest.fixture
def runner(snapcache, tmp_path, busybox_rootfs):
    """conftest's runner, on this module's cache."""
    r = Runner(snapcache, tmp_path / "run", busybox_rootfs)
    yield r
    assert not [p for p in (tmp_path / "run").glob("*") if not p.name.startswith(".")]


def snapshots(cache: Path):
    return sorted((cache / "snapshots").glob("*/vmstate"))


def made_by(runner, args, options):
    """Runs args; the snapshot that run made (there must be one)."""
    before = set(snapshots(runner.cache))
    r = runner.run(args, options=options)
    assert r.returncode == 0, r.stderr
    [snap] = set(snapshots(runner.cache)) - before
    return r, snap


def cmdline_of(out: bytes) -> bytes:
    return out.split(b"CMDLINE:", 1)[1].split(b"\n", 1)[0]


WITH_CMDLINE = 'echo "CMDLINE:$(cat /proc/cmdline)"; '


# each drive's name, size and read-only flag, in the guest's names' order
DRIVES = 'for d in /sys/block/vd*; do echo "DRIVE:${d##*/}:$(cat $d/size):$(cat $d/ro)"; done; '


def drives_of(out: bytes) -> list:
    return [line for line in out.splitlines() if line.startswith(b"DRIVE:")]


def test_restored_run_equals_cold_run(runner, tmp_path):
    vols = tmp_path / "vols"
    script = (WITH_CMDLINE + DRIVES +
              'echo "env:$GREETING"; cat /v/f 2>/dev/null; echo "$GREETING" > /v/f; exit 7')
    opts = ["-e", "GREETING=hello there", "--volumes-dir", str(vols), "-v", "store:/v",
            "--memory", "240"]
    cold = runner.run(["/bin/sh", "-c", script], options=[*opts, "--cold-boot"])
    assert cold.returncode == 7, cold.stderr
    assert RESTORED not in cmdline_of(cold.stdout)
    assert not snapshots(runner.cache), "--cold-boot made a snapshot"
    first = runner.run(["/bin/sh", "-c", script], options=opts)   # makes the snapshot
    warm = runner.run(["/bin/sh", "-c", script], options=opts)    # restores it
    for r in (first, warm):
        assert r.returncode == 7, r.stderr
        assert RESTORED in cmdline_of(r.stdout)
        assert b"env:hello there\n" in r.stdout
        assert b"hello there\n" in r.stdout.split(b"env:hello there\n", 1)[1]  # the volume
    assert len(snapshots(runner.cache)) == 1
    # a restored guest binds its drives after "go" in the order a cold boot
    # probes them: /dev/vdX names the same drive (four: base, delta, control
    # disk, volume, each of its own size)
    assert len(drives_of(cold.stdout)) >= 4, cold.stdout
    assert len(set(d.split(b":")[2] for d in drives_of(cold.stdout))) >= 4, cold.stdout
    assert drives_of(warm.stdout) == drives_of(first.stdout) == drives_of(cold.stdout)
    assert RESTORED not in cmdline_of(runner.run(["/bin/sh", "-c", script],
                                                 options=[*opts, "--cold-boot"]).stdout)


def test_restored_graceful_stop(runner):
    script = (WITH_CMDLINE + 'trap "echo handler-ran; exit 3" TERM; echo ready; '
              'while :; do sleep 0.1; done')
    runner.run(["/bin/true"])  # the shape's snapshot
    proc = runner.start(["/bin/sh", "-c", script])
    head = wait_for_output(proc, b"ready")
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert RESTORED in head
    assert b"handler-ran" in out, err
    assert proc.returncode == 3, err


def test_guest_clock_follows_the_host_after_restore(runner):
    runner.run(["/bin/true"])
    time.sleep(4)  # a guest left on the snapshot's clock would be this far behind
    before = time.time()
    r = runner.run(["/bin/sh", "-c", WITH_CMDLINE + "touch /t; stat -c 'T:%Y' /t"])
    after = time.time()
    assert r.returncode == 0, r.stderr
    assert RESTORED in cmdline_of(r.stdout)
    t = int(r.stdout.split(b"T:", 1)[1].split()[0])
    assert before - 1 <= t <= after + 1, (before, t, after)


IDENTITY = (WITH_CMDLINE + "echo BOOT:$(cat /proc/sys/kernel/random/boot_id); "
            "echo MID:$(cat /etc/machine-id); echo MAC:$(cat /sys/class/net/eth0/address); "
            "echo RND:$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \\n'); "
            "/netprobe tcp 192.0.2.2 7000; echo ready; sleep 3")


@pytest.fixture
def world(runner, netprobe, net_rootfs):  # noqa: F811
    w = World(runner, netprobe, net_rootfs)
    yield w
    w.close()


def fields(out: bytes) -> dict:
    got = {}
    for line in out.splitlines():
        key, sep, value = line.partition(b":")
        if sep and key in (b"BOOT", b"MID", b"MAC", b"RND", b"CMDLINE"):
            got[key] = value
    return got


def test_two_restored_vms_share_no_identity(world):
    first = world.run(["/bin/true"])  # the shape's snapshot (with a NIC)
    assert first.returncode == 0, first.stderr
    procs = [world.start(["/bin/sh", "-c", IDENTITY]) for _ in range(2)]
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=240)
        assert p.returncode == 0, err
        assert b"upstream-tcp" in out, (out, err)  # the network works after a restore
        outs.append(fields(out))
    a, b = outs
    for key in (b"BOOT", b"MID", b"MAC", b"RND"):
        assert a[key] and b[key], (key, a, b)
        assert a[key] != b[key], key
    assert RESTORED in a[b"CMDLINE"] and RESTORED in b[b"CMDLINE"]


def test_corrupted_snapshot_falls_back_to_cold_boot(runner):
    opts = ["--memory", "224"]
    _, snap = made_by(runner, ["/bin/true"], opts)
    with open(snap, "r+b") as f:
        f.write(os.urandom(4096))
    r = runner.run(["/bin/sh", "-c", WITH_CMDLINE + "echo ran"], options=opts)
    assert r.returncode == 0, r.stderr
    assert b"ran" in r.stdout
    assert RESTORED not in cmdline_of(r.stdout)  # booted cold
    assert b"did not restore" in r.stderr
    assert not snap.exists()
    # the next run of the shape makes a new one, and restores it
    again = runner.run(["/bin/sh", "-c", WITH_CMDLINE + "echo ran"], options=opts)
    assert again.returncode == 0, again.stderr
    assert snap.exists()
    third = runner.run(["/bin/sh", "-c", WITH_CMDLINE + "echo ran"], options=opts)
    assert RESTORED in cmdline_of(third.stdout)


def test_snapshot_holds_nothing_of_the_run_that_made_it(runner, tmp_path):
    secret = os.urandom(12).hex().encode()
    envval = os.urandom(12).hex().encode()
    volbytes = os.urandom(12).hex().encode()
    (tmp_path / "secret").write_bytes(secret)
    vols = tmp_path / "vols"
    opts = ["--memory", "208", "-e", f"SNAPENV={envval.decode()}",
            "--secret", f"tok=@{tmp_path / 'secret'}", "--volumes-dir", str(vols), "-v", "d:/d"]
    script = f"echo {volbytes.decode()} > /d/f; sync; cat /run/secrets/tok; echo; echo $SNAPENV"
    r, snap = made_by(runner, ["/bin/sh", "-c", script], opts)
    assert secret in r.stdout and envval in r.stdout  # they did reach the guest
    data = snap.read_bytes()
    assert len(data) > 1 << 20
    for needle in (secret, envval, volbytes, b"SNAPENV"):
        assert needle not in data, needle


def test_snapshot_prepare_then_runs_restore_it(runner):
    """`snapshot prepare` makes the shape's snapshot once (a second call
    keeps it), and runs of that shape restore it, two at once included."""
    env = runner.env()
    shape = ["--memory", "216", "--cpus", "1", "--network", "none"]
    first = subprocess.run([str(BINARY), "snapshot", "prepare", *shape], env=env,
                           capture_output=True, timeout=300)
    assert first.returncode == 0, first.stderr
    path = Path(first.stdout.decode().strip())
    ino = path.stat().st_ino
    again = subprocess.run([str(BINARY), "snapshot", "prepare", *shape], env=env,
                           capture_output=True, timeout=300)
    assert Path(again.stdout.decode().strip()) == path and path.stat().st_ino == ino
    procs = [runner.start(["/bin/sh", "-c", WITH_CMDLINE], options=["--memory", "216"])
             for _ in range(2)]
    for p in procs:
        out, err = p.communicate(timeout=240)
        assert p.returncode == 0, err
        assert RESTORED in cmdline_of(out)
    assert path.stat().st_ino == ino  # neither run made it again


def test_concurrent_first_runs_make_one_snapshot(runner):
    opts = ["--memory", "200"]
    before = set(snapshots(runner.cache))
    procs = [runner.start(["/bin/sh", "-c", WITH_CMDLINE], options=opts) for _ in range(2)]
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
        assert RESTORED in cmdline_of(out)  # the second waited for the first's snapshot
    assert len(set(snapshots(runner.cache)) - before) == 1
    assert not list((runner.cache / "snapshots").glob("*/vmstate.tmp"))


def snapshot_makers(runner):
    """QEMU processes making a boot snapshot for this runner (ctrj.snap=1, no
    -incoming; jailed, named after its run directory, unjailed, its
    initramfs in the cache): other tests run next to this one."""
    marks = (f"ctr-jailer:{runner.run_dir}/".encode(), bytes(runner.cache))
    found = []
    for p in Path("/proc").iterdir():
        try:
            argv = (p / "cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError):
            continue
        if argv and b"qemu" in argv[0] and any(RESTORED in a for a in argv) \
                and b"-incoming" not in argv and any(m in a for a in argv for m in marks):
            found.append(int(p.name))
    return found


def making_snapshot(runner, args, options):
    """A run started, once it makes the boot snapshot of its shape."""
    proc = runner.start(args, options=options)
    deadline = time.monotonic() + 120
    while not snapshot_makers(runner) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None and snapshot_makers(runner), "the run was making its snapshot"
    return proc


def ended_at_once(runner, proc, code):
    """proc (making_snapshot's), asked to stop, ends within 3 s with code,
    the snapshot VM gone, no half-made snapshot left."""
    t0 = time.monotonic()
    _, err = proc.communicate(timeout=180)
    took = time.monotonic() - t0
    assert proc.returncode == code, err
    assert took < 3, f"the stop waited {took:.1f}s for the snapshot"
    assert not snapshot_makers(runner)
    assert not list((runner.cache / "snapshots").glob("*/vmstate.tmp"))


def test_a_stop_while_the_snapshot_is_made_ends_the_run_at_once(runner):
    """SIGTERM during the first run of a shape (its snapshot being made)
    ends the run then, with 143, the snapshot VM gone and no VMM started;
    the next run of the shape makes the snapshot whole."""
    opts = ["--memory", "184"]  # a shape of this test's own
    proc = making_snapshot(runner, ["/bin/true"], opts)
    proc.send_signal(signal.SIGTERM)
    # before the fix the stop waited for the snapshot VM's boot and save,
    # then a restored VM's start and graceful stop
    ended_at_once(runner, proc, 143)
    r = runner.run(["/bin/true"], options=opts)
    assert r.returncode == 0, r.stderr
