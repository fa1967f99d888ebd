# SPDX-License-Identifier: Apache-2.0
"""Health checks (--health-*) run by the run's supervisor through the guest
agent, and `exec --latest`. Real VMs: the check tests for a file in the
guest that the test creates and removes with `exec`; the states are read
from the run record (inspect) and ps."""
import json
import os
import signal
import subprocess
from pathlib import Path

from conftest import BINARY, qemu_processes_for, runs
from test_lifecycle import detach, ps, verb, wait_for
from test_oci import cache, images  # noqa: F401 (fixtures)


def health(runner, run_id):
    r = verb(runner, "inspect", run_id)
    return json.loads(r.stdout).get("health") if r.returncode == 0 else None


def ctrj_exec(runner, *args):
    r = subprocess.run([str(BINARY), "exec", *args], env=runner.env(),
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=120)
    return r


def test_health_starting_healthy_unhealthy(runner):
    run_id = detach(runner, ["sh", "-c", "sleep 600"],
                    ["--health-cmd", r"echo probe-$((6*7)); printf 'esc\033end'; test -f /health-ok",
                     "--health-interval", "1s", "--health-retries", "2",
                     "--health-timeout", "60s", "--health-start-period", "10m"])
    try:
        h = health(runner, run_id)
        assert h["status"] == "starting" and h["failing_streak"] == 0
        assert "(health: starting)" in ps(runner)[run_id]["Status"]
        # failures inside the start period do not count
        h = wait_for(lambda: (lambda x: x if len(x["log"]) >= 2 else None)(
            health(runner, run_id)), what="two failed checks")
        assert h["status"] == "starting" and h["failing_streak"] == 0
        assert all(e["exit_code"] == 1 for e in h["log"]), h
        assert "probe-42\n" in h["log"][-1]["output"]  # the guest's shell ran it
        assert "esc\\x1bend" in h["log"][-1]["output"]  # what it wrote is made safe
        assert ctrj_exec(runner, run_id, "touch", "/health-ok").returncode == 0
        wait_for(lambda: health(runner, run_id)["status"] == "healthy", what="healthy")
        listed = ps(runner)[run_id]
        assert listed["Status"].endswith("(healthy)") and listed["Health"] == "healthy"
        assert health(runner, run_id)["log"][-1]["exit_code"] == 0
        # once healthy, failures count: two in a row make it unhealthy
        assert ctrj_exec(runner, run_id, "rm", "/health-ok").returncode == 0
        h = wait_for(lambda: (lambda x: x if x["status"] == "unhealthy" else None)(
            health(runner, run_id)), what="unhealthy")
        assert h["failing_streak"] >= 2 and h["log"][-1]["exit_code"] == 1
        assert len(h["log"]) <= 5
        assert ps(runner)[run_id]["Status"].endswith("(unhealthy)")
        table = verb(runner, "ps").stdout.decode()
        assert "(unhealthy)" in table
    finally:
        verb(runner, "rm", "-f", run_id)


def test_health_timeout_and_foreground_run(runner):
    """A foreground run keeps health checks too; a check past its timeout
    fails with exit code -1."""
    proc = runner.start(["sh", "-c", "sleep 600"],
                        options=["--name", "fg-health", "--health-cmd", "sleep 100",
                                 "--health-interval", "1s", "--health-timeout", "2s",
                                 "--health-retries", "1"])
    try:
        h = wait_for(lambda: (lambda x: x if x and x["status"] == "unhealthy" else None)(
            health(runner, "fg-health")), timeout=180, what="a timed-out check")
        assert h["log"][-1]["exit_code"] == -1
        assert "exceeded timeout" in h["log"][-1]["output"]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=120)
        verb(runner, "rm", "-f", "fg-health")


def test_no_health_check_and_exec_latest(runner):
    """Negative control: no --health-cmd, no health state and a plain "Up";
    exec --latest reaches the run started last, then the one before once
    that one is gone."""
    first = detach(runner, ["sh", "-c", "echo first > /who; sleep 600"])
    second = detach(runner, ["sh", "-c", "echo second > /who; sleep 600"],
                    ["--no-healthcheck"])
    try:
        assert health(runner, first) is None and health(runner, second) is None
        listed = ps(runner)
        for rid in (first, second):
            assert listed[rid]["Status"].startswith("Up") and "(" not in listed[rid]["Status"]
            assert "Health" not in listed[rid]
        r = wait_for(lambda: (lambda x: x if x.stdout else None)(
            ctrj_exec(runner, "--latest", "--", "sh", "-c", "cat /who")),
            what="the second run's file")
        assert r.returncode == 0 and r.stdout == b"second\n", r
        r = ctrj_exec(runner, "-l", "sh", "-c", "exit 5")
        assert r.returncode == 5
        assert verb(runner, "rm", "-f", second).returncode == 0
        r = wait_for(lambda: (lambda x: x if x.stdout else None)(
            ctrj_exec(runner, "--latest", "cat", "/who")),
            what="the first run's file")
        assert r.returncode == 0 and r.stdout == b"first\n", r
        assert verb(runner, "rm", "-f", first).returncode == 0
        r = ctrj_exec(runner, "--latest", "true")
        assert r.returncode == 125 and b"no run is running" in r.stderr
    finally:
        verb(runner, "rm", "-f", first)
        verb(runner, "rm", "-f", second)


def checks_in_flight(run_id):
    """The health check clients of run_id (`ctr-jailer exec -- ID ...`)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            args = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if args[1:4] == [b"exec", b"--", run_id.encode()]:
            found.append(int(proc.name))
    return found


def test_killed_supervisor_takes_its_check_along(runner):
    """kill -9 of the supervisor while a check runs: the check goes with it
    (it dies with its parent), and gc leaves nothing of the run."""
    run_id = detach(runner, ["sh", "-c", "sleep 600"],
                    ["--health-cmd", "sleep 300", "--health-interval", "1s",
                     "--health-timeout", "10m"])
    wait_for(lambda: checks_in_flight(run_id), what="a check in flight")
    owner = json.loads(verb(runner, "inspect", run_id).stdout)["owner"]["pid"]
    os.kill(owner, signal.SIGKILL)
    wait_for(lambda: not checks_in_flight(run_id), timeout=30, what="the check to end")
    r = verb(runner, "gc")
    assert r.returncode == 0, r.stderr
    assert runs(runner.run_dir) == []
    assert not qemu_processes_for(runner.run_dir)


def test_image_healthcheck_is_honoured(runner, images, cache):
    """An image's HEALTHCHECK (CMD-SHELL, its interval and retries) runs
    without any --health flag; --no-healthcheck turns it off; the flags
    go over it."""
    from test_oci import append_layer, entry, make_tar
    image = append_layer(images.layout, "base", "hc", make_tar([
        entry("hc", "dir"), entry("hc/ready", data=b"ready\n")]), config={
        "Entrypoint": ["/bin/sh", "-c"], "Cmd": ["sleep 600"],
        "Healthcheck": {"Test": ["CMD-SHELL", "cat /hc/ready"],
                        "Interval": 1_000_000_000, "Retries": 1}})
    env = runner.env({"CTR_JAILER_CACHE": str(cache)})
    shown = json.loads(subprocess.run([str(BINARY), "inspect", image], env=env,
                                      capture_output=True, check=True).stdout)
    assert shown["healthcheck"] == {"test": ["CMD-SHELL", "cat /hc/ready"], "interval_ms": 1000,
                                    "timeout_ms": 0, "start_period_ms": 0, "retries": 1}

    def start(*options):
        argv = [str(BINARY), "run", "-d", "--image", image, "--memory", "256", "--cpus", "1",
                "--network", "none", *options]
        r = subprocess.run(argv, env=env, capture_output=True, timeout=300)
        assert r.returncode == 0, r.stderr
        return r.stdout.decode().strip()

    def inspect(rid):
        r = subprocess.run([str(BINARY), "inspect", rid], env=env, capture_output=True)
        return json.loads(r.stdout) if r.returncode == 0 else {}

    ids = []
    try:
        ids.append(start())
        h = wait_for(lambda: (lambda x: x if x and x["status"] == "healthy" else None)(
            inspect(ids[0]).get("health")), what="the image's check to pass")
        assert h["log"][-1]["output"] == "ready\n"
        # the flag's command over the image's (its interval and retries kept)
        ids.append(start("--health-cmd", "exit 3"))
        h = wait_for(lambda: (lambda x: x if x and x["status"] == "unhealthy" else None)(
            inspect(ids[1]).get("health")), what="the flag's check to fail")
        assert h["log"][-1]["exit_code"] == 3
        ids.append(start("--no-healthcheck"))
        wait_for(lambda: inspect(ids[2]).get("state") == "running", what="the third run")
        assert "health" not in inspect(ids[2])
    finally:
        for rid in ids:
            subprocess.run([str(BINARY), "rm", "-f", rid], env=env, capture_output=True)
