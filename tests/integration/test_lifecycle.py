# SPDX-License-Identifier: Apache-2.0
"""The lifecycle of runs kept by a supervisor: run -d, ps, logs, stop, wait,
rm, inspect, names, kill -9 of the supervisor then gc, restart policies and
the console log's bound. Each test boots real VMs and asserts on what the
workload wrote or on host state read directly."""
import json
import os
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from conftest import BINARY, qemu_processes_for, runs


def verb(runner, *args, timeout=120):
    return subprocess.run([str(BINARY), *args], env=runner.env(), capture_output=True,
                          timeout=timeout)


def detach(runner, args, options=()):
    r = runner.run(args, options=["-d", *options])
    assert r.returncode == 0, r.stderr
    run_id = r.stdout.decode().strip()
    assert len(run_id) == 12, r.stdout
    return run_id


def ps(runner, *flags):
    r = verb(runner, "ps", "--format", "json", *flags)
    assert r.returncode == 0, r.stderr
    return {o["ID"]: o for o in map(json.loads, r.stdout.decode().splitlines())}


def wait_for(pred, timeout=120, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = pred()
        if got:
            return got
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}")


def logs(runner, ref, *flags):
    r = verb(runner, "logs", *flags, ref)
    assert r.returncode == 0, r.stderr
    return r.stdout.decode(errors="replace")


TRAPPED = ('trap "echo got-term; exit 7" TERM; echo lifecycle-marker-$((6*7)); '
           'while true; do sleep 1; done')


def test_detached_round_trip(runner):
    run_id = detach(runner, ["sh", "-c", TRAPPED], ["--name", "life-1"])
    listed = ps(runner)
    assert listed[run_id]["State"] == "running" and listed[run_id]["Names"] == "life-1"
    assert qemu_processes_for(runner.run_dir), "no VMM runs for the detached run"
    # what the workload printed (computed in the guest: 6*7)
    wait_for(lambda: "lifecycle-marker-42" in logs(runner, "life-1"), what="the marker in logs")
    assert "lifecycle-marker-42" in logs(runner, run_id[:6], "--tail", "1", "--timestamps")
    # the name is taken while it runs: refused, nothing left of the refused run
    r = runner.run(["true"], options=["-d", "--name", "life-1"])
    assert r.returncode == 125 and b"already in use" in r.stderr, r.stderr
    assert [p.name for p in runs(runner.run_dir)] == [run_id]
    # rm refuses a running one
    r = verb(runner, "rm", "life-1")
    assert r.returncode != 0 and b"running" in r.stderr
    # stop: the workload's TERM trap runs; wait gives its exit code
    r = verb(runner, "stop", "life-1")
    assert r.returncode == 0, r.stderr
    r = verb(runner, "wait", run_id)
    assert r.returncode == 0 and r.stdout.decode().strip() == "7", (r.stdout, r.stderr)
    assert "got-term" in logs(runner, "life-1")
    assert run_id not in ps(runner)
    exited = ps(runner, "-a")[run_id]
    assert exited["State"] == "exited" and exited["ExitCode"] == 7
    rec = json.loads(verb(runner, "inspect", "life-1").stdout)
    assert rec["state"] == "exited" and rec["exit_code"] == 7 and rec["oom_killed"] is False
    assert rec["running"] is False and rec["command"] == ["sh", "-c", TRAPPED]
    assert not qemu_processes_for(runner.run_dir)
    # gc keeps an exited record; rm removes it, and frees its name
    assert verb(runner, "gc").returncode == 0
    assert (runner.run_dir / run_id / "record.json").exists()
    r = verb(runner, "rm", "life-1")
    assert r.returncode == 0, r.stderr
    assert runs(runner.run_dir) == [] and ps(runner, "-a") == {}
    r = verb(runner, "inspect", "life-1")
    assert r.returncode == 125 and b"no such run" in r.stderr


def cgroup_dirs(run_id):
    """The cgroup directories of the run's jail, wherever they are."""
    found = []
    for root, dirs, _ in os.walk("/sys/fs/cgroup"):
        for d in list(dirs):
            if d == f"ctrj-{run_id}":
                found.append(os.path.join(root, d))
        if root.count("/") > 7:
            dirs[:] = []
    return found


@pytest.fixture
def netns():
    name = f"cjl{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    for cmd in (["link", "add", "uplink", "type", "veth", "peer", "name", "far"],
                ["addr", "add", "192.0.2.1/24", "dev", "uplink"],
                ["link", "set", "uplink", "up"], ["link", "set", "far", "up"],
                ["link", "set", "lo", "up"],
                ["route", "add", "default", "via", "192.0.2.254"]):
        subprocess.run(["ip", "-n", name, *cmd], check=True)
    yield name
    subprocess.run(["ip", "netns", "del", name], check=False)


def ns_state(ns):
    def out(*cmd):
        return subprocess.run(["ip", "netns", "exec", ns, *cmd], capture_output=True).stdout
    strip = lambda o: b"\n".join(l for l in o.splitlines() if not l.startswith(b"#"))
    return (out("nft", "list", "ruleset"), strip(out("iptables-nft-save")),
            # an IPv6 link-local address is "tentative" until its DAD is done
            out("ip", "-o", "link"), out("ip", "-o", "addr").replace(b"tentative ", b""))


def test_killed_supervisor_then_gc_leaves_nothing(runner, netns):
    before = ns_state(netns)
    argv = ["nsenter", f"--net=/var/run/netns/{netns}",
            *runner.argv(["sh", "-c", "echo up; sleep 600"],
                         options=["-d", "--name", "doomed", "--network", "tap",
                                  "--firewall", "nft", "-p", "18080:80"])]
    r = subprocess.run(argv, env=runner.env(), capture_output=True, timeout=180)
    assert r.returncode == 0, r.stderr
    run_id = r.stdout.decode().strip()
    rec = json.loads(verb(runner, "inspect", run_id).stdout)
    assert rec["state"] == "running" and rec["ports"] == ["0.0.0.0:18080->80/tcp"]
    assert rec["address"].count(".") == 3
    during = ns_state(netns)
    assert during != before, "the run changed nothing in its namespace (no TAP, no rules?)"
    cgroups = cgroup_dirs(run_id)
    assert cgroups, "the run's jail has no cgroup"
    vmms = qemu_processes_for(runner.run_dir)
    assert vmms
    os.kill(rec["owner"]["pid"], signal.SIGKILL)
    wait_for(lambda: not verb(runner, "ps", "-q").stdout.strip(), what="ps to drop it")
    assert ps(runner, "-a")[run_id]["State"] == "dead"
    r = subprocess.run(["nsenter", f"--net=/var/run/netns/{netns}", str(BINARY), "gc"],
                       env=runner.env(), capture_output=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert runs(runner.run_dir) == []
    assert not qemu_processes_for(runner.run_dir)
    assert [c for c in cgroups if os.path.exists(c)] == []
    assert ns_state(netns) == before


def test_restart_on_failure_counts_restarts(runner):
    run_id = detach(runner, ["sh", "-c", "echo boot-$$; exit 3"],
                    ["--restart", "on-failure:2"])
    r = verb(runner, "wait", run_id, timeout=300)
    assert r.returncode == 0 and r.stdout.decode().strip() == "3", (r.stdout, r.stderr)
    rec = json.loads(verb(runner, "inspect", run_id).stdout)
    assert rec["restart_count"] == 2 and rec["exit_code"] == 3
    # three boots, each of which printed its line
    assert logs(runner, run_id).count("boot-") == 3
    assert verb(runner, "rm", run_id).returncode == 0


def test_console_log_stays_bounded(runner, tmp_path):
    # about 3 MB of lines, more than the two 1 MiB files hold
    chatty = ("i=0; while [ $i -lt 3000 ]; do "
              "echo line-$i-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
              "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
              "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
              "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
              "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
              "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
              "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
              "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
              "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
              "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
              "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
              "xxxxxxxxxxxxxxxxxxxxxxxxxxxx; i=$((i+1)); done; echo chatty-done")
    run_id = detach(runner, ["sh", "-c", chatty])
    # -f, from before the workload's first line, follows across rotations
    # (into a file: a reader that falls behind by a whole rotation loses it)
    with open(tmp_path / "followed", "wb") as out:
        follower = subprocess.Popen([str(BINARY), "logs", "-f", run_id], env=runner.env(),
                                    stdout=out)
        assert verb(runner, "wait", run_id, timeout=600).stdout.decode().strip() == "0"
        follower.wait(timeout=60)  # it ends with the run
    followed = (tmp_path / "followed").read_bytes()
    seen = [l.split("-")[1] for l in followed.decode().splitlines() if l.startswith("line-")]
    assert seen == [str(i) for i in range(3000)]
    d = runner.run_dir / run_id
    files = sorted(p.name for p in d.iterdir() if p.name.startswith("console.log"))
    assert files == ["console.log", "console.log.1"]
    for f in files:
        assert (d / f).stat().st_size <= (1 << 20) + 4096
    text = logs(runner, run_id)
    assert text.rstrip().endswith("chatty-done")
    assert "line-0-" not in text  # rotated away
    assert len(logs(runner, run_id, "--tail", "2").splitlines()) == 2
    assert verb(runner, "rm", run_id).returncode == 0


def test_which_records_are_kept(runner):
    # a named foreground run keeps its record, with the workload's status
    r = runner.run(["sh", "-c", "echo fg-out; exit 5"], options=["--name", "fg-1"])
    assert r.returncode == 5 and b"fg-out" in r.stdout, r.stderr
    kept = [o for o in ps(runner, "-a").values() if o["Names"] == "fg-1"]
    assert len(kept) == 1 and kept[0]["ExitCode"] == 5 and kept[0]["State"] == "exited"
    assert "fg-out" in logs(runner, "fg-1")
    assert verb(runner, "rm", "fg-1").returncode == 0
    # --rm keeps nothing, even detached, once the run ended
    run_id = detach(runner, ["sh", "-c", "echo rm-run > /dev/null"], ["--rm"])
    wait_for(lambda: not (runner.run_dir / run_id).exists(), what="the --rm run to go")
    assert runs(runner.run_dir) == []


def test_kill_and_forced_rm(runner):
    # kill -s USR1 reaches the workload's trap through the agent, a
    # terminal (-t) or not; the run goes on
    run_id = detach(runner, ["sh", "-c", "trap 'echo got-usr1' USR1; echo k-ready; "
                             "while :; do sleep 1 & wait $!; done"], ["--name", "k-1", "-t"])
    wait_for(lambda: "k-ready" in logs(runner, "k-1"), what="the workload's start")
    r = verb(runner, "kill", "-s", "USR1", "k-1")
    assert r.returncode == 0, r.stderr
    wait_for(lambda: "got-usr1" in logs(runner, "k-1"), timeout=60, what="the trap's output")
    assert ps(runner)[run_id]["State"] == "running"
    assert verb(runner, "kill", "k-1").returncode == 0
    r = verb(runner, "wait", "k-1")
    assert r.stdout.decode().strip() == "137", (r.stdout, r.stderr)  # 128 + SIGKILL
    assert not qemu_processes_for(runner.run_dir)
    other = detach(runner, ["sleep", "600"], ["--name", "k-2"])
    r = verb(runner, "rm", "-f", other[:5], "k-1")
    assert r.returncode == 0, r.stderr
    assert runs(runner.run_dir) == [] and not qemu_processes_for(runner.run_dir)


def test_foreground_prints_the_guest_address(runner, netns):
    def run(*options):
        argv = ["nsenter", f"--net=/var/run/netns/{netns}",
                *runner.argv(["cat", "/proc/net/fib_trie"],
                             options=["--network", "tap", "--firewall", "nft",
                                      "-p", "18081:81", *options])]
        r = subprocess.run(argv, env=runner.env(), capture_output=True, timeout=180)
        assert r.returncode == 0, r.stderr
        return r
    r = run()
    line = [l for l in r.stderr.decode().splitlines() if "guest address" in l]
    assert len(line) == 1, r.stderr
    address = line[0].split("guest address ", 1)[1].split(",")[0]
    assert address in r.stdout.decode()  # the guest's own view of its address
    assert "ports 0.0.0.0:18081->81/tcp" in line[0]
    assert b"guest address" not in run("-q").stderr


def test_oom_kill_is_recorded(runner):
    # QEMU itself cannot fit its cgroup's memory limit: killed while it starts
    argv = runner.argv(["true"], options=["--name", "oomy"])
    argv[argv.index("--memory") + 1] = "72"
    argv[argv.index("--"):argv.index("--")] = ["--memory-limit", "72M"]
    r = subprocess.run(argv, env=runner.env(), capture_output=True, timeout=180)
    assert r.returncode != 0
    rec = json.loads(verb(runner, "inspect", "oomy").stdout)
    assert rec["oom_killed"] is True and rec["state"] == "exited"
    assert verb(runner, "rm", "oomy").returncode == 0


def test_stop_time_kills_a_workload_that_ignores_term(runner):
    run_id = detach(runner, ["sh", "-c", 'trap "" TERM; echo deaf-ready; sleep 600'],
                    ["--stop-timeout", "60"])
    wait_for(lambda: "deaf-ready" in logs(runner, run_id), what="the workload to start")
    started = time.monotonic()
    assert verb(runner, "stop", "-t", "2", run_id).returncode == 0
    took = time.monotonic() - started
    assert 2 <= took < 30, took  # not the run's 60 s grace
    r = verb(runner, "wait", run_id)
    assert r.stdout.decode().strip() == "137", (r.stdout, r.stderr)
    assert verb(runner, "rm", run_id).returncode == 0


def test_exec_by_name_after_a_restart(runner, tmp_path):
    """After --restart boots the VM again, exec reaches the new boot (by the
    run's name): the first boot's exec socket is closed and made anew (found
    by review: it leaked and later execs hung). The volume tells boots apart."""
    workload = "if [ -e /v/once ]; then echo second-boot; sleep 600; else touch /v/once; exit 1; fi"
    run_id = detach(runner, ["sh", "-c", workload],
                    ["--name", "life-exec", "--restart", "on-failure:1",
                     "--volumes-dir", str(tmp_path / "vols"), "-v", "boots:/v"])
    wait_for(lambda: "second-boot" in logs(runner, "life-exec"), timeout=240,
             what="the second boot")
    r = subprocess.run([str(BINARY), "exec", "life-exec", "sh", "-c", "cat /proc/uptime; ls /v"],
                       env=runner.env(), capture_output=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert b"once" in r.stdout
    assert json.loads(verb(runner, "inspect", run_id).stdout)["restart_count"] == 1
    assert verb(runner, "rm", "-f", "life-exec").returncode == 0
    assert runs(runner.run_dir) == []


def test_restarts_keep_the_undo_log_bounded(runner):
    """Each boot's VMM entries (jail cgroups, files given to the jail's
    user) are undone before the next boot pushes them again: the record's
    undo log is as long at every boot (it grew by a boot's worth each time)."""
    run_id = detach(runner, ["sh", "-c", "sleep 2; exit 3"], ["--restart", "on-failure:3"])
    record = runner.run_dir / run_id / "record.json"
    sizes = {}

    def sample():
        try:
            rec = json.loads(record.read_text())
        except (OSError, ValueError):
            return False
        if rec.get("state") == "running" and "vmm" in rec:
            sizes.setdefault(rec.get("restart_count", 0), set()).add(len(rec["undo"]))
        return rec.get("state") == "exited"
    wait_for(sample, timeout=300, what="the run's end")
    # (between boots the log is shorter: the last boot's entries undone)
    assert sorted(sizes) == [0, 1, 2, 3], sizes
    assert len({max(s) for s in sizes.values()}) == 1, sizes
    assert max(sizes[0]) > 0  # negative control: the VMM stage does push entries
    rec = json.loads(verb(runner, "inspect", run_id).stdout)
    assert rec["restart_count"] == 3 and rec["exit_code"] == 3
    assert verb(runner, "rm", run_id).returncode == 0
    assert runs(runner.run_dir) == []


def test_detached_supervisor_leaves_the_callers_cwd(runner, tmp_path):
    """The supervisor works in "/": the directory it was started from can
    go away while the run lives; relative paths given were made absolute
    first (here --rootfs)."""
    caller = tmp_path / "caller"
    caller.mkdir()
    rel_rootfs = os.path.relpath(runner.rootfs, caller)
    argv = runner.argv(["sh", "-c", "echo cwd-run-up; sleep 600"], rootfs=rel_rootfs,
                       options=["-d"])
    r = subprocess.run(argv, env=runner.env(), cwd=caller, capture_output=True, timeout=180)
    assert r.returncode == 0, r.stderr
    run_id = r.stdout.decode().strip()
    rec = json.loads(verb(runner, "inspect", run_id).stdout)
    owner = rec["owner"]["pid"]
    assert os.readlink(f"/proc/{owner}/cwd") == "/"
    caller.rmdir()  # the caller's directory goes; the run does not care
    wait_for(lambda: "cwd-run-up" in logs(runner, run_id), what="the workload's line")
    assert ps(runner)[run_id]["State"] == "running"
    assert verb(runner, "rm", "-f", run_id).returncode == 0


@pytest.mark.parametrize("detached", [False, True])
def test_relative_image_path_is_unpacked_by_the_detached_supervisor(runner, tmp_path, detached):
    """--image tar:FILE relative to the caller: the image is unpacked by the
    supervisor, which works in "/". The run is made to fail at a later
    stage (a volume that cannot be created), so no VM boots: what it
    reports must be the volume, never the image (the foreground run is the
    control)."""
    import tarfile
    caller = tmp_path / "caller"
    caller.mkdir()
    cache = tmp_path / "cache"
    cache.mkdir()
    for sub in ("kernels", "vmlinux", "initramfs", "modules"):
        (runner.cache / sub).mkdir(exist_ok=True)
        (cache / sub).symlink_to(runner.cache / sub)
    with tarfile.open(caller / "img.tar", "w") as t:
        t.add(runner.rootfs, arcname=".")
    missing = tmp_path / "no-such-dir" / "x.img"
    argv = [str(BINARY), "run", "--image", "tar:img.tar", "--memory", "256", "--cpus", "1",
            "--network", "none", "-v", f"{missing}:/data", *(["-d"] if detached else []),
            "--", "/bin/true"]
    r = subprocess.run(argv, env=runner.env({"CTR_JAILER_CACHE": str(cache)}), cwd=caller,
                       capture_output=True, timeout=180)
    err = r.stderr.decode(errors="replace")
    assert r.returncode == 125, err
    assert "img.tar" not in err and str(missing) in err, err
    assert list((cache / "images").rglob("*.ext4")), "the image was not unpacked"
