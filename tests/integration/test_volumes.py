# SPDX-License-Identifier: Apache-2.0
"""Persistent drives (the seed's /jail/data and named volumes) and secrets,
checked from inside real VMs."""
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import BINARY, parse_probe, qemu_processes_for, wait_for_output


@pytest.fixture
def vols(tmp_path):
    d = tmp_path / "volumes"
    return d


def vopts(vols, *specs, extra=()):
    out = ["--volumes-dir", str(vols)]
    for s in specs:
        out += ["-v", s]
    return out + list(extra)


def test_data_survives_exit_graceful_stop_and_vmm_sigkill(runner, vols):
    opts = vopts(vols, "store:/store")
    # normal exit
    r = runner.run(["/bin/sh", "-c", "echo normal > /store/a && sync"], options=opts)
    assert r.returncode == 0, r.stderr
    # graceful stop: written and synced, then SIGTERM while running
    proc = runner.start(["/bin/sh", "-c", "echo graceful > /store/b && sync && echo ready && "
                         "sleep 1000"], options=opts)
    wait_for_output(proc, b"ready")
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=120)
    # SIGKILL of the VMM itself: the journal holds the synced data
    proc = runner.start(["/bin/sh", "-c", "echo killed > /store/c && sync && echo ready && "
                         "sleep 1000"], options=opts)
    wait_for_output(proc, b"ready")
    for pid in qemu_processes_for(runner.run_dir):
        os.kill(pid, signal.SIGKILL)
    proc.communicate(timeout=60)
    assert proc.returncode == 124       # the VM ended without reporting a status
    r = runner.run(["/bin/sh", "-c", "cat /store/a /store/b /store/c"], options=opts)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [b"normal", b"graceful", b"killed"]
    # the next start's e2fsck left a clean filesystem
    assert subprocess.run(["e2fsck", "-n", "-f", str(vols / "store.ext4")],
                          capture_output=True).returncode == 0


def test_three_volumes_one_read_only(runner, vols, tmp_path):
    image = tmp_path / "image.ext4"
    # create "shared" with a file, then attach it read-only next to two others
    r = runner.run(["/bin/sh", "-c", "echo seeded > /s/file"], options=vopts(vols, "shared:/s"))
    assert r.returncode == 0, r.stderr
    script = ("echo one > /v/one/f && echo three > /v/three/f && cat /v/one/f /v/three/f "
              "/v/ro/file && (echo x > /v/ro/new && echo ro-write-ok || echo ro-write-failed)")
    r = runner.run(["/bin/sh", "-c", script],
                   options=vopts(vols, "one:/v/one", "shared:/v/ro:ro", f"{image}:/v/three"))
    assert r.returncode == 0, r.stderr
    assert r.stdout.split()[:3] == [b"one", b"three", b"seeded"]
    assert b"ro-write-failed" in r.stdout
    assert b"ro-write-ok" not in r.stdout
    assert image.exists()


# Runs a command in a private mount namespace whose root is an overlay of
# the host's root with /jail/data bound from $DATA: the host never gets a
# /jail, and concurrent tests never see one.
SEED_NS = r"""
set -e
t=$(mktemp -d)
mount -t tmpfs ctrj-test "$t"
mkdir "$t/up" "$t/work" "$t/root"
mount -t overlay overlay -o "lowerdir=/,upperdir=$t/up,workdir=$t/work" "$t/root"
for d in proc sys dev run tmp var/tmp; do mount --rbind "/$d" "$t/root/$d"; done
mkdir -p "$t/root/jail/data"
mount --bind "$DATA" "$t/root/jail/data"
exec chroot "$t/root" "$@"
"""


def test_seed_data_drive_at_jail_data(runner, tmp_path):
    """/jail/data bound to a directory gives /dev/vdb (datafs.ext4 created
    once, persistent); DATA_MOUNT mounts it."""
    data = tmp_path / "jail-data"
    data.mkdir()

    def run(script, env=None):
        argv = runner.argv(["/bin/sh", "-c", script])
        cmd = ["unshare", "-m", "--propagation", "private", "sh", "-c", SEED_NS, "sh", *argv]
        return subprocess.run(cmd, env=runner.env({"DATA": str(data), **(env or {})}),
                              capture_output=True, timeout=180)

    r = run("mkdir -p /m && mount /dev/vdb /m && echo persisted > /m/f && umount /m")
    assert r.returncode == 0, r.stderr
    image = data / "datafs.ext4"
    inode = image.stat().st_ino
    r = run("mkdir -p /m && mount /dev/vdb /m && cat /m/f")
    assert r.returncode == 0, r.stderr
    assert b"persisted" in r.stdout
    assert image.stat().st_ino == inode          # created once, reused
    r = run("cat /data/f; grep -c ' /data ' /proc/mounts", env={"DATA_MOUNT": "/data"})
    assert r.stdout.split() == [b"persisted", b"1"], r.stderr
    # negative control: without DATA_MOUNT the drive stays unmounted
    r = run("grep -c /dev/vdb /proc/mounts || true")
    assert r.stdout.split() == [b"0"]
    assert not Path("/jail").exists()


def test_volume_grows_never_shrinks(runner, vols):
    r = runner.run(["/bin/sh", "-c", "echo kept > /g/f"], options=vopts(vols, "g:/g:size=32M"))
    assert r.returncode == 0, r.stderr
    r = runner.run(["/bin/sh", "-c", "cat /g/f; blockdev --getsize64 /dev/vdd /dev/vde 2>/dev/null;"
                    " df -k /g | tail -1"], options=vopts(vols, "g:/g:size=64M"))
    assert r.returncode == 0, r.stderr
    assert r.stdout.split()[0] == b"kept"
    total_kib = int(r.stdout.split()[-5])
    assert total_kib > 40 * 1024          # the filesystem grew past the old 32M
    r = runner.run(["/bin/true"], options=vopts(vols, "g:/g:size=16M"))
    assert r.returncode == 125
    assert b"shrinking" in r.stderr


def test_second_writer_refused_readers_share(runner, vols):
    r = runner.run(["/bin/true"], options=vopts(vols, "shared:/s"))
    assert r.returncode == 0, r.stderr
    first = runner.start(["/bin/sh", "-c", "echo ready; sleep 1000"],
                         options=vopts(vols, "shared:/s"))
    wait_for_output(first, b"ready")
    second = runner.run(["/bin/true"], options=vopts(vols, "shared:/s"))
    assert second.returncode == 125
    assert b"in use" in second.stderr
    assert first.poll() is None                # the first run is unaffected
    first.send_signal(signal.SIGTERM)
    first.communicate(timeout=120)
    # read-only attachments share
    a = runner.start(["/bin/sh", "-c", "echo ready; sleep 1000"],
                     options=vopts(vols, "shared:/s:ro"))
    wait_for_output(a, b"ready")
    b = runner.run(["/bin/sh", "-c", "test -d /s && echo shared-ok"],
                   options=vopts(vols, "shared:/s:ro"))
    a.send_signal(signal.SIGTERM)
    a.communicate(timeout=120)
    assert b.returncode == 0 and b"shared-ok" in b.stdout, b.stderr


def test_secret_never_on_host_disk(runner, vols, tmp_path):
    value = b"S3CRET-" + os.urandom(8).hex().encode()
    secret_file = Path("/dev/shm") / f"ctrj-test-secret-{os.getpid()}"
    secret_file.write_bytes(value)
    marker = tmp_path / "before-the-run"
    marker.touch()
    time.sleep(0.01)
    try:
        script = ("stat -c '%u %g %a' /run/secrets/file /run/secrets/env; cat /run/secrets/file; "
                  "echo; cat /run/secrets/env; echo; (env; cat /var/environment) | "
                  "grep -c S3CRET || true")
        r = runner.run(["/bin/sh", "-c", script], env={"TOKEN": value.decode()},
                       options=vopts(vols, "v:/v", extra=[
                           "--user", "app", "--secret", f"file=@{secret_file}",
                           "--secret", "env=env:TOKEN"]))
    finally:
        secret_file.unlink()
    assert r.returncode == 0, r.stderr
    lines = r.stdout.split(b"\n")
    assert lines[0] == b"1000 1000 400" and lines[1] == b"1000 1000 400"
    assert lines[2] == value and lines[3] == value
    assert lines[4] == b"0"          # neither exported nor in /var/environment
    # byte search: cache (base images, initramfs, snapshots), volume images,
    # run dir parent; only files written since the run began can hold it
    # (the shared test cache is many GB)
    for root in (runner.cache, vols, runner.run_dir.parent):
        written = subprocess.run(["find", str(root), "-type", "f", "-newer", str(marker),
                                  "-print0"], capture_output=True).stdout
        hits = subprocess.run(["xargs", "-0", "-r", "grep", "-l", "--binary-files=binary",
                               value.decode()], input=written, capture_output=True)
        assert hits.stdout == b"", hits.stdout
    probe = tmp_path / "probe"
    probe.write_bytes(b"x" + value)
    found = subprocess.run(["find", str(tmp_path), "-type", "f", "-newer", str(marker),
                            "-print0"], capture_output=True).stdout
    assert str(probe).encode() in found  # the search does see a file written after the marker


@pytest.mark.parametrize("options,needle", [
    (["-v", "name:relative/path"], "absolute"),
    (["-v", "name:/p:size=0"], "size"),
    (["-v", "name:/p:size=lots"], "size"),
    (["--secret", "x=@/no/such/secret"], "/no/such/secret"),
])
def test_bad_volume_and_secret_input(runner, vols, options, needle):
    r = runner.run(["/bin/true"], options=["--volumes-dir", str(vols), *options])
    lines = [l for l in r.stderr.decode().splitlines() if "KVM here" not in l]
    assert r.returncode == 125
    assert len(lines) == 1 and needle in lines[0], lines
    assert not vols.exists() or not list(vols.iterdir())


def test_missing_bind_source_refused_nothing_created(runner, vols, tmp_path):
    # A directory is a host directory now (test_host_dirs.py); a bind
    # mount's missing source is refused before any volume is made.
    d = tmp_path / "a-directory"
    r = runner.run(["/bin/true"], options=vopts(vols, "ok:/ok") +
                   ["--mount", f"type=bind,source={d},target=/d"])
    lines = [l for l in r.stderr.decode().splitlines() if "KVM here" not in l]
    assert r.returncode == 125
    assert len(lines) == 1 and "does not create it" in lines[0], lines
    assert not d.exists()
    assert not vols.exists() or not list(vols.iterdir())   # "ok" was not created either
