# SPDX-License-Identifier: Apache-2.0
"""e2fsck and resize2fs read filesystems the guest wrote: they run jailed
(own namespaces, a room with only the tool and the image, an unprivileged
user, no capabilities), so a parser bug in e2fsprogs is not host root.
Issue 11, point 11."""
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess

import pytest

from conftest import REPO, runs, wait_for_output, recorded_ids


def make_image(path, size="32M", files=None, owner=None, mode=0o600):
    """An ext4 image made on the host, as a guest would leave it."""
    seed = path.parent / (path.name + ".d")
    seed.mkdir()
    for name, content in (files or {}).items():
        (seed / name).write_text(content)
    subprocess.run(["truncate", "-s", size, str(path)], check=True)
    subprocess.run(["mke2fs", "-q", "-F", "-t", "ext4", "-d", str(seed), str(path)], check=True)
    shutil.rmtree(seed)
    if owner:
        os.chown(path, *owner)
    path.chmod(mode)


def superblock(image):
    out = subprocess.run(["dumpe2fs", "-h", str(image)], capture_output=True, check=True)
    fields = {}
    for line in out.stdout.decode().splitlines():
        key, _, value = line.partition(":")
        fields[key.strip()] = value.strip()
    return fields


@pytest.fixture
def host_listener():
    """A TCP service on the host's loopback: the tool must not reach it."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(8)
    yield s.getsockname()[1]
    s.close()


@pytest.fixture
def fake_tools(tmp_path, host_listener):
    """A directory with a hostile e2fsck and resize2fs (faketool.c)."""
    bindir = tmp_path / "fakebin"
    bindir.mkdir()
    host_dir = tmp_path / "host"
    host_dir.mkdir()
    subprocess.run(["musl-gcc", "-static", "-O2", f'-DHOST_DIR="{host_dir}"',
                    f"-DPORT={host_listener}", "-o", str(bindir / "e2fsck"),
                    str(REPO / "tests/integration/faketool.c")], check=True)
    shutil.copy(bindir / "e2fsck", bindir / "resize2fs")
    return bindir, host_dir


def fake_reports(image):
    """What the fake tools wrote into the image's boot block."""
    with open(image, "rb") as f:
        return fake_reports_bytes(f.read(1024))


def fake_reports_bytes(head):
    reports = {}
    for at in (0, 512):
        text = head[at:at + 512].split(b"\0", 1)[0].decode("latin-1")
        m = re.match(r"FAKE (.*) END$", text)
        if m:
            fields = dict(kv.split("=", 1) for kv in m.group(1).split())
            reports[fields["tool"]] = fields
    return reports


def check_reports(reports, host_dir, as_owner=False):
    """as_owner: the image's filesystem has no idmapped mounts, so the tool
    runs as the image's owner (root), still without any capability."""
    leftover = sorted(p.name for p in host_dir.iterdir())
    assert leftover == [], f"the tool wrote on the host: {leftover}, {reports}"
    for rep in reports.values():
        assert rep["image"] == "ok", rep                # it could do its job
        if as_owner:
            assert rep["uid"] == "0" and rep["gid"] == "0", rep
        else:
            assert rep["uid"] != "0" and rep["gid"] != "0", rep
        assert rep["capeff"] == "0" * 16, rep
        assert rep["bounding"] == "0", rep
        assert rep["nnp"] == "1", rep
        assert rep["pid"] == "1", rep                  # its own pid namespace
        assert rep["hostfile"] != "ok", rep             # /etc/hostname is not there
        assert rep["hostdir"] != "ok", rep              # nor the test's directory
        assert rep["loopback"] != "ok", rep             # nor the host's loopback
        assert rep["secret"] == "0", rep                # nor the runtime's environment
        assert rep["rootlocked"] == "1", rep            # its room: ro, nodev, nosuid, noexec


def fake_env(bindir):
    return {"PATH": f"{bindir}:{os.environ.get('PATH', '/usr/bin:/bin')}",
            "CTRJ_TEST_SECRET": "s3cret"}


def test_hostile_e2fsck_and_resize2fs_reach_nothing_on_the_host(runner, tmp_path, fake_tools):
    bindir, host_dir = fake_tools
    image = tmp_path / "vol.ext4"
    make_image(image, files={"hello": "from-before\n"})
    # size=64M: e2fsck -p (check), e2fsck -f and resize2fs (grow)
    r = runner.run(["/bin/sh", "-c", "cat /v/hello"],
                   options=["-v", f"{image}:/v:size=64M"], env=fake_env(bindir))
    reports = fake_reports(image)
    # the fakes ran, and wrote the image they were given
    assert set(reports) == {"e2fsck", "resize2fs"}, (reports, r.stderr)
    check_reports(reports, host_dir)
    # the run went on: the guest mounted the volume
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [b"from-before"]
    # the host file keeps its owner and mode
    st = image.stat()
    assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (0, 0, 0o600)


def test_hostile_e2fsck_on_a_block_device(runner, tmp_path, fake_tools, loop_device):
    """The same on a block device volume, which reaches the tool as a device
    node of its own."""
    bindir, host_dir = fake_tools
    r = runner.run(["/bin/sh", "-c", "cat /b/hello"],
                   options=["-v", f"{loop_device}:/b"], env=fake_env(bindir))
    with open(loop_device, "rb") as dev:
        reports = fake_reports_bytes(dev.read(1024))
    assert set(reports) == {"e2fsck"}, (reports, r.stderr)
    check_reports(reports, host_dir)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [b"from-the-device"]


# --jail-uid-range RUN_UID:1: the one uid a run can take, known in advance
RUN_UID = 2100000123


@pytest.mark.parametrize("mode", ["jail", "no-jail", "jail-user"])
def test_tools_run_as_the_runs_own_uid(runner, tmp_path, fake_tools, mode):
    """The tools hold the volume read-write: they run as the uid the run
    took for itself (and records), not as a user every run shares, whose
    other processes could ptrace them. With --no-jail only the VMM leaves
    the jail: the tools still take the run's uid. With --jail-user, that
    user."""
    bindir, host_dir = fake_tools
    image = tmp_path / "vol.ext4"
    make_image(image, files={"hello": "from-before\n"})
    options = ["--jail-uid-range", f"{RUN_UID}:1", "-v", f"{image}:/v:size=64M"]
    uid = gid = str(RUN_UID)
    if mode == "no-jail":
        options.append("--no-jail")
    elif mode == "jail-user":
        options += ["--jail-user", "4242:4343"]
        uid, gid = "4242", "4343"
    proc = runner.start(["/bin/sh", "-c", "cat /v/hello; echo ready; exec sleep 60"],
                        options=options, env=fake_env(bindir))
    try:
        out = wait_for_output(proc, b"ready")
        # the run's record, read from the host while it runs
        records = [[str(x) for x in recorded_ids(run)] if recorded_ids(run) else None
                   for run in runs(runner.run_dir)]
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    reports = fake_reports(image)
    assert set(reports) == {"e2fsck", "resize2fs"}, reports
    check_reports(reports, host_dir)
    assert records == [[uid, gid]], records
    try:
        shared = pwd.getpwnam("ctr-jailer").pw_uid
    except KeyError:
        shared = 65534
    for rep in reports.values():
        assert (rep["uid"], rep["gid"]) == (uid, gid), rep
        assert rep["uid"] != str(shared), rep
    assert b"from-before" in out
    assert proc.returncode == 128 + signal.SIGTERM, proc.returncode


# The runtime in a private mount namespace with an overlay mounted at
# $MERGED, as in a container whose volumes live on its own root.
OVERLAY_NS = r"""
set -e
mount -t overlay overlay -o "lowerdir=$LOWER,upperdir=$UPPER,workdir=$WORK" "$MERGED"
exec "$@"
"""


def test_hostile_e2fsck_on_overlayfs_gets_no_capability(runner, tmp_path, fake_tools):
    """Overlayfs has no idmapped mounts: the tool runs as the image's owner
    (root), in the same jail, with no capability and nothing of the host."""
    bindir, host_dir = fake_tools
    dirs = {name: tmp_path / name.lower() for name in ("LOWER", "UPPER", "WORK", "MERGED")}
    for d in dirs.values():
        d.mkdir()
    make_image(dirs["LOWER"] / "vol.ext4", files={"hello": "from-the-overlay\n"})
    argv = runner.argv(["/bin/sh", "-c", "cat /v/hello"],
                       options=["-v", f"{dirs['MERGED']}/vol.ext4:/v"])
    r = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", OVERLAY_NS,
                        "sh", *argv],
                       env=runner.env({**fake_env(bindir), **{k: str(v) for k, v in dirs.items()}}),
                       capture_output=True, timeout=180)
    # the runtime's read-write open copied the image up
    reports = fake_reports(dirs["UPPER"] / "vol.ext4")
    assert set(reports) == {"e2fsck"}, (reports, r.stderr)
    check_reports(reports, host_dir, as_owner=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [b"from-the-overlay"]


@pytest.fixture
def loop_device(tmp_path):
    """A loop device over a fresh image, detached afterwards."""
    backing = tmp_path / "blockdev.img"
    make_image(backing, files={"hello": "from-the-device\n"})
    dev = subprocess.run(["losetup", "--find", "--show", str(backing)], capture_output=True,
                         check=True).stdout.decode().strip()
    try:
        yield dev
    finally:
        subprocess.run(["losetup", "-d", dev], check=False)


def test_real_tools_check_and_grow_through_the_jail(runner, tmp_path, loop_device):
    """Positive control: the real e2fsck repairs a file image (owned by a
    non-root user) and a block device, and resize2fs grows the file image,
    all jailed, and the jailed QEMU attaches both (a block device reaches it
    as an fd, which it must open with its host_device driver)."""
    image = tmp_path / "vol.ext4"
    make_image(image, files={"hello": "from-the-file\n"}, owner=(1234, 5678), mode=0o640)
    for target in (str(image), loop_device):
        # the filesystem says it has errors: e2fsck -p must do a full check
        subprocess.run(["tune2fs", "-E", "force_fsck", target], check=True, capture_output=True)
        assert "errors" in superblock(target)["Filesystem state"]
    r = runner.run(["/bin/sh", "-c", "cat /v/hello /b/hello; df -k /v | tail -1"],
                   options=["-v", f"{image}:/v:size=64M", "-v", f"{loop_device}:/b"])
    assert r.returncode == 0, r.stderr
    lines = r.stdout.decode().splitlines()
    assert lines[:2] == ["from-the-file", "from-the-device"], r.stdout
    assert int(lines[2].split()[1]) > 40 * 1024                  # grown past 32M
    for target in (str(image), loop_device):
        sb = superblock(target)
        assert "errors" not in sb["Filesystem state"], (target, sb["Filesystem state"])
    sb = superblock(image)
    assert int(sb["Block count"]) * int(sb["Block size"]) == 64 << 20
    st = image.stat()
    assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (1234, 5678, 0o640)


def test_real_e2fsck_refusal_still_stops_the_run(runner, tmp_path):
    """Exit codes keep their meaning through the jail: e2fsck -p's 4 (errors
    left) stops the run with one line naming the volume and e2fsck's own
    words; the image is left for the operator."""
    image = tmp_path / "broken.ext4"
    make_image(image)
    subprocess.run(["debugfs", "-w", "-R", "clri <2>", str(image)], check=True,
                   capture_output=True)                      # the root inode is gone
    subprocess.run(["tune2fs", "-E", "force_fsck", str(image)], check=True, capture_output=True)
    r = runner.run(["/bin/true"], options=["-v", f"{image}:/v"])
    lines = [l for l in r.stderr.decode().splitlines() if "KVM here" not in l]
    assert r.returncode == 125, r.stderr
    assert len(lines) == 1, lines
    assert "broken.ext4" in lines[0] and "cannot fix" in lines[0], lines
    assert "UNEXPECTED INCONSISTENCY" in lines[0], lines
