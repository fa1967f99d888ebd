# SPDX-License-Identifier: Apache-2.0
"""ctr-jailer volume create|ls|inspect|rm|prune, against real runs: what a
VM wrote stays in the volume, and a volume a running VM holds is never
removed."""
import json
import signal
import subprocess

from conftest import BINARY, wait_for_output


def volume(runner, vols, *args):
    return subprocess.run([str(BINARY), "volume", args[0], "--volumes-dir", str(vols), *args[1:]],
                          env=runner.env(), capture_output=True, timeout=120)


def test_round_trip_and_in_use_refused(runner, tmp_path):
    vols = tmp_path / "vols"
    r = volume(runner, vols, "create", "--size", "64M", "data")
    assert r.returncode == 0 and r.stdout == b"data\n", r.stderr
    assert volume(runner, vols, "create", "spare").returncode == 0
    again = volume(runner, vols, "create", "data")            # docker: no error
    assert again.returncode == 0
    info = json.loads(volume(runner, vols, "inspect", "data").stdout)
    assert info[0]["Name"] == "data" and info[0]["Size"] == 64 << 20 and not info[0]["InUse"]
    assert volume(runner, vols, "inspect", "nope").returncode != 0

    # a VM holds "data": it is in use, and neither rm nor prune removes it
    proc = runner.start(["/bin/sh", "-c", "echo kept > /d/f && sync && echo ready && sleep 1000"],
                        options=["--volumes-dir", str(vols), "-v", "data:/d"])
    wait_for_output(proc, b"ready", timeout=240)
    listed = [json.loads(l) for l in volume(runner, vols, "ls", "--format", "json").stdout.splitlines()]
    assert {v["Name"]: v["InUse"] for v in listed} == {"data": True, "spare": False}
    r = volume(runner, vols, "rm", "data")
    assert r.returncode != 0 and b"in use by a running VM" in r.stderr
    r = volume(runner, vols, "prune", "--force")
    assert r.returncode == 0 and b"spare" in r.stdout and b"data" not in r.stdout
    assert (vols / "data.ext4").exists() and not (vols / "spare.ext4").exists()
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=120)

    # what the VM wrote is in the volume; then it goes
    r = runner.run(["/bin/cat", "/d/f"], options=["--volumes-dir", str(vols), "-v", "data:/d"])
    assert r.returncode == 0 and r.stdout == b"kept\n", r.stderr
    assert volume(runner, vols, "ls", "-q").stdout == b"data\n"
    r = volume(runner, vols, "rm", "data")
    assert r.returncode == 0, r.stderr
    assert volume(runner, vols, "ls", "-q").stdout == b""
    assert not (vols / "data.ext4").exists()


def test_prune_asks_unless_forced(runner, tmp_path):
    vols = tmp_path / "vols"
    assert volume(runner, vols, "create", "v").returncode == 0
    r = subprocess.run([str(BINARY), "volume", "prune", "--volumes-dir", str(vols)],
                       env=runner.env(), capture_output=True, stdin=subprocess.DEVNULL, timeout=60)
    assert r.returncode != 0 and b"--force" in r.stderr
    assert (vols / "v.ext4").exists()


def test_variable_and_flag(runner, tmp_path):
    by_env, by_flag = tmp_path / "env", tmp_path / "flag"
    env = runner.env({"CTR_JAILER_VOLUMES": str(by_env)})
    run = lambda *a: subprocess.run([str(BINARY), "volume", *a], env=env, capture_output=True,
                                    timeout=60)
    assert run("create", "a").returncode == 0
    assert run("create", "--volumes-dir", str(by_flag), "b").returncode == 0
    assert run("ls", "-q").stdout == b"a\n"                               # the variable
    assert run("ls", "-q", "--volumes-dir", str(by_flag)).stdout == b"b\n"  # the flag wins
    r = run("create", "../x")
    assert r.returncode != 0 and b"name" in r.stderr
    r = run("frob")
    assert r.returncode != 0 and b"unknown command" in r.stderr
