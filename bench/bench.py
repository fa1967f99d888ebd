#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""ctr-jailer benchmarks (not tests: nothing here passes or fails).

Reports, over repeated runs with a warm cache, the median of every --timings
phase; the cold base-image build time for a 10 MB and a 500 MB rootfs; the
warm host-side time for the 500 MB rootfs; and ctr-jailer's own peak RSS.
Targets (DEVELOPERS' issue 2): host-side work before the VMM exec <= 20 ms
warm whatever the rootfs size; the init's own work <= 10 ms of guest time;
peak RSS <= 8 MiB."""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(os.environ.get("CTRJ_BUILD", REPO / "build")) / "ctr-jailer"


def make_rootfs(root: Path, megabytes: int):
    (root / "bin").mkdir(parents=True)
    shutil.copy("/bin/busybox", root / "bin/busybox")
    for a in ("sh", "true", "sleep"):
        (root / "bin" / a).symlink_to("busybox")
    data = root / "data"
    data.mkdir()
    # 1 MiB files of incompressible data in 100 directories
    for i in range(megabytes):
        d = data / f"d{i % 100:02d}"
        d.mkdir(exist_ok=True)
        (d / f"f{i}").write_bytes(os.urandom(1 << 20))


def vmm_rss_kib(parent: int) -> int:
    """VmRSS of the VMM child of ctr-jailer (0 when not found)."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            st = (proc / "status").read_text()
        except OSError:
            continue
        fields = dict(l.split(":", 1) for l in st.splitlines() if ":" in l)
        if fields.get("PPid", "").strip() == str(parent) and "qemu" in fields.get("Name", ""):
            return int(fields.get("VmRSS", "0 kB").split()[0])
    return 0


def run_once(cache: Path, rootfs: Path, run_dir: Path, options=(), command=("/bin/true",),
             prefix=()):
    argv = [*prefix, str(BIN), "run", "--rootfs", str(rootfs), "--memory", "256", "--cpus", "1",
            "--network", "none", "--no-env-passthrough", "--timings", *options, "--", *command]
    env = {"PATH": os.environ["PATH"], "CTR_JAILER_CACHE": str(cache),
           "CTR_JAILER_RUN_DIR": str(run_dir)}
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    hwm = vmm_rss = 0
    status = Path(f"/proc/{proc.pid}/status")
    while proc.poll() is None:
        try:
            for line in status.read_text().splitlines():
                if line.startswith("VmHWM:"):
                    hwm = max(hwm, int(line.split()[1]))
        except OSError:
            pass
        vmm_rss = max(vmm_rss, vmm_rss_kib(proc.pid))
        time.sleep(0.005)
    err = proc.stderr.read().decode()
    for line in err.splitlines():
        if line.startswith("{"):
            t = json.loads(line)
            t["peak_rss_kib"] = hwm
            t["vmm_rss_kib"] = vmm_rss
            return t
    raise SystemExit(f"run failed: {err}")


def exec_and_supervisor(cache: Path, rootfs: Path, run_dir: Path, runs: int) -> dict:
    """A detached run: the median round trip of `exec ID /bin/true` into its
    running guest, and the VmRSS of the supervisor that keeps it."""
    env = {"PATH": os.environ["PATH"], "CTR_JAILER_CACHE": str(cache),
           "CTR_JAILER_RUN_DIR": str(run_dir)}
    r = subprocess.run([str(BIN), "run", "-d", "--rootfs", str(rootfs), "--memory", "256",
                        "--cpus", "1", "--network", "none", "--no-env-passthrough", "--",
                        "/bin/sleep", "600"], env=env, capture_output=True, check=True)
    run_id = r.stdout.decode().strip()
    try:
        sock = run_dir / run_id / "agent.sock"
        deadline = time.monotonic() + 120
        while not sock.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        subprocess.run([str(BIN), "exec", run_id, "/bin/true"], env=env, check=True)  # greeted
        times = []
        for _ in range(runs):
            t = time.monotonic()
            subprocess.run([str(BIN), "exec", run_id, "/bin/true"], env=env, check=True)
            times.append((time.monotonic() - t) * 1000)
        owner = json.loads((run_dir / run_id / "record.json").read_text())["owner"]["pid"]
        rss = next(int(l.split()[1]) for l in Path(f"/proc/{owner}/status").read_text().splitlines()
                   if l.startswith("VmRSS:"))
    finally:
        subprocess.run([str(BIN), "rm", "-f", run_id], env=env, capture_output=True)
    return {"exec_round_trip_ms": round(statistics.median(times), 3),
            "supervisor_rss_kib": rss}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--big-mb", type=int, default=500)
    ap.add_argument("--only", default="",
                    help="comma-separated parts: jail, network, iptables (the network with "
                         "--firewall iptables-nft too); default: everything but iptables")
    ap.add_argument("--cache", default=os.environ.get("CTR_JAILER_CACHE",
                                                      "/var/tmp/ctr-jailer-test-cache"))
    args = ap.parse_args()
    only = set(filter(None, args.only.split(",")))
    want = lambda part: not only or part in only
    cache = Path(args.cache)
    if not (cache / "kernels/default").exists():
        subprocess.run([BIN, "kernel", "fetch"], check=True,
                       env={**os.environ, "CTR_JAILER_CACHE": str(cache)})
    results = {}
    with tempfile.TemporaryDirectory(dir="/var/tmp") as tmp:
        tmp = Path(tmp)
        small, big = tmp / "rootfs-10mb", tmp / "rootfs-big"
        make_rootfs(small, 10)
        if not only:
            make_rootfs(big, args.big_mb)
        # cold builds: a fresh base-image cache, the shared kernel cache
        for name, root in (("10mb", small), (f"{args.big_mb}mb", big)) if not only else ():
            cold = tmp / f"cache-{name}"
            cold.mkdir()
            (cold / "kernels").symlink_to(cache / "kernels")
            t = run_once(cold, root, tmp / "run")
            results[f"cold_base_image_ms_{name}"] = t["base_image_ms"]
            t = run_once(cold, root, tmp / "run")
            results[f"warm_vmm_exec_ms_{name}"] = t["vmm_exec_ms"]
        med = lambda rs, k: statistics.median(r[k] for r in rs)
        # the first warms the caches; with --only, the jail's runs below
        # are interleaved with --no-jail ones
        runs = [run_once(cache, small, tmp / "run")
                for _ in range(1 if only else args.runs + 1)][1:]
        # the jail: setup + teardown, against --no-jail, the two interleaved
        if want("jail"):
            free = []
            for i in range(args.runs):
                free.append(run_once(cache, small, tmp / "run", ["--no-jail"]))
                if only:
                    runs.append(run_once(cache, small, tmp / "run"))
            results["jail_setup_ms"] = round(med(runs, "vmm_exec_ms") - med(free, "vmm_exec_ms"), 3)
            results["jail_teardown_ms"] = round(med(runs, "teardown_ms") - med(free, "teardown_ms"), 3)
        if not only:
            # exec into a running guest, and the supervisor of a detached run
            results.update(exec_and_supervisor(cache, small, tmp / "run", args.runs))
            # the VMM's memory above guest RAM: RSS for a 128 MiB guest
            t = run_once(cache, small, tmp / "run", ["--memory", "128"], ("/bin/sleep", "2"))
            results["vmm_rss_kib_128mib_guest"] = t["vmm_rss_kib"]
        if want("network"):
            results.update(network(cache, small, tmp, args.runs, "iptables" in only))
    phases = [k for k in (runs[0] if runs else {}) if isinstance(runs[0][k], (int, float))
              and not isinstance(runs[0][k], bool)]
    for k in phases:
        results[f"median_{k}"] = round(statistics.median(r[k] for r in runs if k in r), 3)
    print(json.dumps(results, indent=2))
    print("targets: median_vmm_exec_ms <= 20 (host work before exec, warm); "
          "median_guest_init_work_ms <= 10; median_peak_rss_kib <= 8192; "
          "jail_setup_ms + jail_teardown_ms <= 10; network_setup_ms + network_teardown_ms <= 15; "
          "exec_round_trip_ms <= 30; supervisor_rss_kib <= 4096")


def network(cache: Path, small: Path, tmp: Path, runs: int, with_iptables: bool) -> dict:
    """Networking: setup + teardown per VM, in a namespace of our own; runs
    with and without a TAP interleaved, so that the machine's load weighs on
    both alike."""
    med = lambda rs, k: statistics.median(r[k] for r in rs)
    results = {}
    ns = f"cjbench{os.getpid()}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        for cmd in (["ip", "-n", ns, "link", "add", "up0", "type", "veth", "peer", "name", "up1"],
                    ["ip", "-n", ns, "addr", "add", "192.0.2.1/24", "dev", "up0"],
                    ["ip", "-n", ns, "link", "set", "up0", "up"],
                    ["ip", "-n", ns, "link", "set", "up1", "up"],
                    ["ip", "-n", ns, "route", "add", "default", "via", "192.0.2.2"]):
            subprocess.run(cmd, check=True)
        enter = ["nsenter", f"--net=/var/run/netns/{ns}"]
        tap_opts = ["--network", "tap", "--dns", "192.0.2.2"]
        kinds = {"": tap_opts}
        if with_iptables:
            kinds["_iptables"] = [*tap_opts, "--firewall", "iptables"]
        got = {k: [] for k in kinds}
        none = []
        for _ in range(runs):
            for k, opts in kinds.items():
                got[k].append(run_once(cache, small, tmp / "run", opts, prefix=enter))
            none.append(run_once(cache, small, tmp / "run", prefix=enter))
        for k in kinds:
            results[f"network_setup_ms{k}"] = round(
                med(got[k], "vmm_exec_ms") - med(none, "vmm_exec_ms"), 3)
            results[f"network_teardown_ms{k}"] = round(
                med(got[k], "teardown_ms") - med(none, "teardown_ms"), 3)
    finally:
        subprocess.run(["ip", "netns", "del", ns])
    return results


if __name__ == "__main__":
    main()
