# SPDX-License-Identifier: Apache-2.0
"""The cgroup v2 host path (issue 17), proven inside a guest of ctr-jailer:
the machines here are cgroup v1 hybrid, but the guest's init mounts cgroup2
at /sys/fs/cgroup with every controller, as most hosts have it today.

One outer VM boots a Debian root filesystem with what ctr-jailer needs at
run time (the Docker test's mmdebstrap base: QEMU, e2fsprogs and the
runtime libraries, cached under /var/tmp) and a read-only volume carrying
this tree's freshly built binary, the test kernel (with only the modules
the initramfs takes) and a busybox rootfs. Its workload (OUTER below) runs
that binary three times, inner QEMU under TCG inside TCG:

- A: `--memory-limit 512M --pids-limit 100 --cpu-quota 0.5`, a workload that
  exits 7 by itself. While the inner VM runs, the workload reads the VM's
  cgroup (memory.max, pids.max, cpu.max, the processes in it); after the
  exit, it lists what is left.
- B: the same runtime SIGKILLed once its QEMU is in its cgroup, then
  `ctr-jailer gc`: the cgroup and the VMM are gone.
- C: `--memory 72 --memory-limit 72M` (the smallest guest, host/budget.h's
  CJ_MIN_MEMORY_MIB, and no margin): QEMU itself outgrows the limit
  while it starts (before any boot, so the case costs seconds); the kernel's
  own OOM record names the VM's cgroup and the runtime says so.

Every value asserted is what the outer workload read from the cgroup
filesystem, /proc or the kernel log of the outer guest, or the inner
runtime's exit status and output. The one inner boot is slow: the whole
test took three minutes on an idle 2-core machine (plus, the first time,
the unpacking and the outer image), up to eleven with other VM tests
loading both cores; A's timings are in the output."""
import fcntl
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from conftest import BINARY, REPO, runs
from test_docker import runtime_base_tarball

OUTER_MEMORY = 2048          # MiB: the inner QEMU and its caches live in it
OUTER_TIMEOUT = 1200         # seconds: nested TCG took up to 11 minutes on a loaded machine

# The outer guest's workload. $P is the payload volume.
OUTER = r"""#!/bin/sh
set -u
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
P=/payload
CJ="$P/ctr-jailer"
export CTR_JAILER_CACHE=/var/tmp/cj-cache CTR_JAILER_RUN_DIR=/run/ctr-jailer
mkdir -p "$CTR_JAILER_CACHE"
RUN="$CJ run --rootfs $P/busybox --kernel $P/kernel/vmlinuz --modules $P/kernel/modules \
     --memory 128 --cpus 1 --network none --cold-boot"  # nested TCG: no second boot for a snapshot

echo "host.fs=$(stat -fc %T /sys/fs/cgroup)"
echo "host.controllers=$(cat /sys/fs/cgroup/cgroup.controllers)"

# The cgroup of the inner run, once a QEMU is in it: its path on stdout.
vm_cgroup() {
    while kill -0 "$1" 2>/dev/null; do
        for d in /sys/fs/cgroup/ctrj-*; do
            [ -f "$d/cgroup.procs" ] || continue
            for p in $(cat "$d/cgroup.procs" 2>/dev/null); do
                case "$(cat /proc/$p/comm 2>/dev/null)" in
                qemu*) echo "$d"; return 0 ;;
                esac
            done
        done
        sleep 0.2
    done
    return 1
}

left() {
    echo "$1.cgroups-left=$(ls -d /sys/fs/cgroup/ctrj-* 2>/dev/null | wc -l)"
    n=0
    for c in /proc/[0-9]*/comm; do
        case "$(cat "$c" 2>/dev/null)" in qemu*) n=$((n + 1)) ;; esac
    done
    echo "$1.qemu-left=$n"
    echo "$1.runs-left=$(ls "$CTR_JAILER_RUN_DIR" 2>/dev/null | grep -vc '^\.')"
}

# A: limits, read while the inner VM runs; a normal exit
start=$(date +%s)
$RUN --timings --memory-limit 512M --pids-limit 100 --cpu-quota 0.5 -- \
    /bin/sh -c 'echo "inner: up"; exit 7' >/tmp/a.out 2>/tmp/a.err &
pid=$!
if d=$(vm_cgroup $pid); then
    echo "A.seconds-to-qemu=$(($(date +%s) - start))"
    echo "A.cgroup=$d"
    for f in memory.max pids.max cpu.max; do echo "A.$f=$(cat "$d/$f")"; done
    echo "A.procs=$(for p in $(cat "$d/cgroup.procs"); do cat /proc/$p/comm; done | sort -u |
                    tr '\n' ' ')"
fi
while kill -0 $pid 2>/dev/null && ! grep -q "inner: up" /tmp/a.out; do sleep 0.5; done
echo "A.seconds-to-workload=$(($(date +%s) - start))"
wait $pid
echo "A.rc=$?"
echo "A.seconds=$(($(date +%s) - start))"
grep -q "inner: up" /tmp/a.out && echo "A.inner=up"
left A
sed 's/^/A.err: /' /tmp/a.err | head -20

# B: SIGKILL of the runtime, then gc
$RUN -- /bin/sh -c 'sleep 1000' >/tmp/b.out 2>/tmp/b.err &
pid=$!
if d=$(vm_cgroup $pid); then
    echo "B.cgroup=$d"
    kill -KILL $pid
    wait $pid
    echo "B.after-kill.exists=$([ -d "$d" ] && echo yes || echo no)"
    $CJ gc >/tmp/b.gc 2>&1
    echo "B.gc.rc=$?"
    sleep 1
    echo "B.after-gc.exists=$([ -d "$d" ] && echo yes || echo no)"
fi
left B
sed 's/^/B.err: /' /tmp/b.err | head -20

# C: the memory limit kills QEMU while it starts
$RUN --memory 72 --memory-limit 72M -- /bin/true >/tmp/c.out 2>/tmp/c.err
echo "C.rc=$?"
grep -q "killed by its cgroup memory limit" /tmp/c.err && echo "C.reported=memory limit"
dmesg | grep -E "oom-kill:.*oom_memcg=/ctrj-" | sed 's/.*\(oom_memcg=[^,]*\).*\(task=[^,]*\).*/C.kernel=\1 \2/' | head -1
left C
sed 's/^/C.err: /' /tmp/c.err | head -20
echo "outer: done"
"""


def initramfs_modules():
    """The modules the initramfs takes, as src/lib/kernel/initramfs.c lists
    them (the payload's modules tree holds these and their dependencies)."""
    src = (REPO / "src/lib/kernel/initramfs.c").read_text()
    body = re.search(r"cj_initramfs_modules\[\]\s*=\s*\{([^}]*)\}", src).group(1)
    return re.findall(r'"([^"]+)"', body)


def trimmed_modules(tree: Path, out: Path):
    """tree's modules.dep, and the module files, for the initramfs's
    modules and their dependencies only: the inner runtime images a
    modules tree of ~1 MB instead of ~100 MB."""
    deps = {}
    for line in (tree / "modules.dep").read_text().splitlines():
        path, _, rest = line.partition(":")
        name = re.sub(r"\.ko(\.\w+)?$", "", Path(path).name).replace("-", "_")
        deps[name] = (path, rest.split())
    keep, todo = set(), [n for n in initramfs_modules() if n in deps]
    while todo:
        name = todo.pop()
        if deps[name][0] in keep:
            continue
        keep.add(deps[name][0])
        for dep in deps[name][1]:
            todo.append(re.sub(r"\.ko(\.\w+)?$", "", Path(dep).name).replace("-", "_"))
    out.mkdir(parents=True)
    lines = []
    for name, (path, rest) in deps.items():
        if path in keep:
            (out / path).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(tree / path, out / path)
            lines.append(f"{path}: {' '.join(rest)}".rstrip())
    (out / "modules.dep").write_text("\n".join(lines) + "\n")
    return len(keep)


@pytest.fixture(scope="module")
def outer_rootfs():
    """The Docker test's base tarball (the same cached file), unpacked once
    under /var/tmp next to it: an unchanged directory, so the outer base
    image is built once and then taken from the cache."""
    base_tarball = runtime_base_tarball()
    path = Path(str(base_tarball).replace("ctr-jailer-docker-base-", "ctr-jailer-cgroup2-root-")
                .removesuffix(".tar"))
    with open(f"{path}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if path.exists():
            return path
        partial = Path(f"{path}.partial")
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir()
        subprocess.run(["tar", "-xpf", str(base_tarball), "--numeric-owner", "-C", str(partial)],
                       check=True, capture_output=True)
        partial.rename(path)
        for old in Path("/var/tmp").glob("ctr-jailer-cgroup2-root-*"):
            if old.is_dir() and old != path:      # unpacked from another base
                shutil.rmtree(old, ignore_errors=True)
                Path(f"{old}.lock").unlink(missing_ok=True)
    return path


@pytest.fixture
def payload(tmp_path, kernel_ready, busybox_rootfs):
    """The read-only volume of the outer VM: the binary under test, the
    kernel with a trimmed modules tree, a busybox rootfs, the workload."""
    src = tmp_path / "payload"
    src.mkdir()
    shutil.copy2(BINARY, src / "ctr-jailer")
    ktree = (kernel_ready / "kernels" / "default").resolve()
    release = next((ktree / "lib/modules").iterdir()).name
    (src / "kernel").mkdir()
    shutil.copy2(ktree / "boot" / f"vmlinuz-{release}", src / "kernel/vmlinuz")
    assert trimmed_modules(ktree / "lib/modules" / release, src / "kernel/modules") >= 4
    shutil.copytree(busybox_rootfs, src / "busybox", symlinks=True)
    (src / "outer.sh").write_text(OUTER)
    image = tmp_path / "payload.ext4"
    subprocess.run(["mke2fs", "-q", "-F", "-t", "ext4", "-d", str(src), str(image), "64M"],
                   check=True, capture_output=True)
    return image


def parse(text: str) -> dict:
    out = {}
    for line in text.splitlines():
        m = re.match(r"^([ABC]\.[\w.-]+|host\.\w+)=(.*)$", line.strip())
        if m:
            out.setdefault(m.group(1), m.group(2).strip())
    return out


@pytest.fixture
def nested(runner, outer_rootfs, payload):
    """One outer boot, three inner runs: (values read by the workload, raw
    output for messages)."""
    t0 = time.monotonic()
    r = subprocess.run([str(BINARY), "run", "--rootfs", str(outer_rootfs),
                        "--memory", str(OUTER_MEMORY), "--cpus", "2", "--network", "none",
                        "-v", f"{payload}:/payload:ro", "--", "/bin/sh", "/payload/outer.sh"],
                       env=runner.env(), capture_output=True, timeout=OUTER_TIMEOUT)
    took = time.monotonic() - t0
    out = r.stdout.decode(errors="replace")
    raw = (f"outer status {r.returncode} after {took:.0f} s\nstdout:\n{out[-6000:]}\n"
           f"stderr:\n{r.stderr.decode(errors='replace')[-3000:]}")
    print(raw)  # the inner runs' own report, for the log
    assert r.returncode == 0 and "outer: done" in out, raw
    assert runs(runner.run_dir) == []
    return parse(out), raw


def test_cgroup_v2_limits_oom_and_cleanup(nested):
    seen, raw = nested
    # the outer guest is a cgroup v2 host with the controllers the jail uses
    assert seen["host.fs"] == "cgroup2fs", raw
    assert {"cpu", "memory", "pids"} <= set(seen["host.controllers"].split()), raw

    # A: the limits, as the kernel holds them while the VM runs, on its VMM
    assert re.fullmatch(r"/sys/fs/cgroup/ctrj-[\w-]+", seen.get("A.cgroup", "")), raw
    assert seen["A.memory.max"] == str(512 << 20), raw
    assert seen["A.pids.max"] == "100", raw
    assert seen["A.cpu.max"] == "50000 100000", raw
    assert "qemu-system-x86" in seen["A.procs"], raw
    # a normal exit: the workload's status, and nothing left
    assert seen["A.rc"] == "7" and seen.get("A.inner") == "up", raw
    assert (seen["A.cgroups-left"], seen["A.qemu-left"], seen["A.runs-left"]) == ("0", "0", "0"), raw

    # B: SIGKILL of the runtime leaves its cgroup; gc removes it and the VMM
    assert seen.get("B.cgroup", "").startswith("/sys/fs/cgroup/ctrj-"), raw
    assert seen["B.after-kill.exists"] == "yes", raw
    assert seen["B.gc.rc"] == "0" and seen["B.after-gc.exists"] == "no", raw
    assert (seen["B.cgroups-left"], seen["B.qemu-left"], seen["B.runs-left"]) == ("0", "0", "0"), raw

    # C: an OOM kill in the VM's cgroup, on QEMU, reported as such
    assert seen.get("C.kernel", "").startswith("oom_memcg=/ctrj-"), raw
    assert "task=qemu-system-x86" in seen["C.kernel"], raw
    assert seen["C.rc"] == "124" and seen.get("C.reported") == "memory limit", raw
    assert (seen["C.cgroups-left"], seen["C.qemu-left"], seen["C.runs-left"]) == ("0", "0", "0"), raw
