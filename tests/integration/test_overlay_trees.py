# SPDX-License-Identifier: Apache-2.0
"""A rootfs and a kernel modules tree on an overlayfs whose layers sit on
different file systems (issue 17): what a user has with a tmpfs or volume
upper in a container, under fuse-overlayfs, or inside a VM. There, every
non-directory reports the device of the layer holding it, and a tree walk
that told mounts apart by device skipped them all: the image was sized
short (mke2fs ran out of inodes) or, where it fitted, its cache key missed
the files, so a changed file was not seen at the next run.

Each layer is a tmpfs instance of its own (xino off, the kernel's default),
mounted in a private mount namespace of the test (`unshare -m` around the runtime), so nothing is
left on the host. In the same namespace a directory and a file are
bind-mounted inside the rootfs: what they cover is another file system,
which the image must not take in (the negative control)."""
import os
import signal
import subprocess

import pytest

from conftest import BINARY, CACHE, qemu_processes_for, runs

MANY = 1500          # more files than a walk by device leaves inodes for

# Everything below runs in the test's own mount namespace; $1 is the work
# directory, $2 the busybox tree, $3 the kernel's tree, then the runtime's
# argv up to "--rootfs" (the rootfs and the command are added here).
SCRIPT = r"""
set -eu
T=$1 BUSYBOX=$2 KTREE=$3
shift 3
REL=$(ls "$KTREE/lib/modules")
mkdir -p "$T/lower" "$T/upper" "$T/merged" "$T/mlower" "$T/mupper" "$T/modules" \
         "$T/outside"
echo "from another file system" > "$T/outside/secret"

# rootfs: the busybox tree in one tmpfs, the overlay's upper in another
mount -t tmpfs -o size=64m lower "$T/lower"
cp -a "$BUSYBOX/." "$T/lower/"
mkdir "$T/lower/bound"
echo v0 > "$T/lower/etc/marker"
echo "the tree's own" > "$T/lower/etc/bound-file"
mount -t tmpfs -o size=16m upper "$T/upper"
mkdir "$T/upper/u" "$T/upper/w"
mount -t overlay overlay \
      -o "lowerdir=$T/lower,upperdir=$T/upper/u,workdir=$T/upper/w,xino=off" "$T/merged"
# written through the overlay: the file (and its directory) now live in
# the upper, where the change below is made in place
echo v1 > "$T/merged/etc/marker"
# mounts inside the rootfs: never part of its image
mount --bind "$T/outside" "$T/merged/bound"
mount --bind "$T/outside/secret" "$T/merged/etc/bound-file"

echo "== run1"
rc=0
"$@" --rootfs "$T/merged" -- /bin/sh -c 'echo "marker=$(cat /etc/marker)";
    echo "bound=$(ls -A /bound | wc -l)"; echo "bound-file=$(cat /etc/bound-file)"' || rc=$?
echo "rc1=$rc"

# a change written through the merged directory: only the file changes
echo v2 > "$T/merged/etc/marker"
echo "== run2"
rc=0
"$@" --rootfs "$T/merged" -- /bin/sh -c 'echo "marker=$(cat /etc/marker)"' || rc=$?
echo "rc2=$rc"

# every busybox applet and many more files (the issue's tree), through the
# merged directory; the kernel's modules tree on an overlay the same way
for a in $(busybox --list); do
    [ -e "$T/merged/bin/$a" ] || ln -s busybox "$T/merged/bin/$a"
done
mkdir "$T/merged/many"
i=0; while [ $i -lt $MANY ]; do : > "$T/merged/many/f$i"; i=$((i + 1)); done
mount -t tmpfs -o size=512m mlower "$T/mlower"
cp -a "$KTREE/lib/modules/$REL/." "$T/mlower/"
mount -t tmpfs -o size=16m mupper "$T/mupper"
mkdir "$T/mupper/u" "$T/mupper/w"
mount -t overlay overlay \
      -o "lowerdir=$T/mlower,upperdir=$T/mupper/u,workdir=$T/mupper/w,xino=off" \
      "$T/modules"
echo "== run3"
rc=0
"$@" --rootfs "$T/merged" --kernel "$KTREE/boot/vmlinuz-$REL" --modules "$T/modules" -- \
    /bin/sh -c 'echo "marker=$(cat /etc/marker)"; echo "many=$(ls /many | wc -l)";
                echo "applets=$(ls /bin | wc -l)";
                echo "hid=$(ls /lib/modules/$(uname -r)/kernel/drivers/hid | wc -l)"' || rc=$?
echo "rc3=$rc"
"""


def parse(text: str) -> dict:
    """key=value lines of each run ("== runN" starts one), keys prefixed
    with the run's name."""
    out, run = {}, ""
    for line in text.splitlines():
        if line.startswith("== "):
            run = line[3:].strip()
        elif "=" in line:
            k, _, v = line.partition("=")
            out[k if k.startswith("rc") else f"{run}.{k}"] = v.strip()
    return out


@pytest.fixture(scope="module")
def overlay_runs(kernel_ready, busybox_rootfs, tmp_path_factory):
    """Both runs, once for the module's tests: (parsed report, raw output)."""
    work = tmp_path_factory.mktemp("overlay-trees")
    # A cache of the test's own (with the shared kernel): the images of
    # these one-off trees are not kept in the shared test cache.
    cache = work / "cache"
    cache.mkdir()
    (cache / "kernels").symlink_to(kernel_ready / "kernels")
    run_dir = work / "run"
    ktree = (kernel_ready / "kernels" / "default").resolve()
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "CTR_JAILER_CACHE": str(cache),
           "CTR_JAILER_RUN_DIR": str(run_dir), "MANY": str(MANY)}
    argv = [str(BINARY), "run", "--memory", "256", "--cpus", "1", "--network", "none"]
    r = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", SCRIPT, "sh",
                        str(work / "t"), str(busybox_rootfs), str(ktree), *argv],
                       env=env, capture_output=True, timeout=900)
    text = r.stdout.decode(errors="replace")
    raw = f"script status {r.returncode}\nstdout:\n{text}\nstderr:\n" + \
        r.stderr.decode(errors="replace")[-3000:]
    leftovers, procs = runs(run_dir), qemu_processes_for(run_dir)
    for pid in procs:
        os.kill(pid, signal.SIGKILL)
    assert r.returncode == 0, raw
    assert not leftovers and not procs, (leftovers, procs)
    return parse(text), raw


def test_overlay_trees_boot_whole(overlay_runs):
    """The overlay's files are all in the images: the busybox tree boots
    and runs its command, and every file of the rootfs and of the modules
    tree is there, however many."""
    seen, raw = overlay_runs
    assert seen.get("rc1") == "0", raw
    assert seen["run1.marker"] == "v1", raw
    assert seen.get("rc3") == "0", raw
    assert seen["run3.many"] == str(MANY), raw
    applets = set(subprocess.run(["busybox", "--list"], capture_output=True, check=True,
                                 text=True).stdout.split()) | {"busybox"}
    assert seen["run3.applets"] == str(len(applets)), raw
    host_hid = len(list((CACHE / "kernels/default").resolve().glob(
        "lib/modules/*/kernel/drivers/hid/*")))
    assert host_hid > 50 and seen["run3.hid"] == str(host_hid), raw


def test_overlay_change_seen_on_next_run(overlay_runs):
    """A file changed through the merged directory changes the cache key:
    the next run boots a new image with the new content."""
    seen, raw = overlay_runs
    assert seen.get("rc2") == "0", raw
    assert seen["run2.marker"] == "v2", raw


def test_mounts_inside_the_tree_stay_out(overlay_runs):
    """Negative control: a directory and a file bind-mounted inside the
    rootfs are another file system's; the guest sees what the tree itself
    holds there (an empty directory, the file's own content)."""
    seen, raw = overlay_runs
    assert seen.get("rc1") == "0", raw
    assert seen["run1.bound"] == "0", raw
    assert seen["run1.bound-file"] == "the tree's own", raw
