# SPDX-License-Identifier: Apache-2.0
"""config.json's hooks in runtime mode, driven as containerd's runc shim
drives runc (test_runtime.py's subreaper driver): each hook appends its
kind and the status of the state it read on stdin to one file in a host
directory the guest shares; startContainer runs in the guest (it writes
through the share, with the container's hostname)."""
import json

from test_runtime import drive_created, world  # noqa: F401 (the fixture)

# $0: the hook's kind; the state on stdin; poststart waits for the
# workload's own line (it runs once the workload was released).
SCRIPT = (
    'st=$(cat); s=$(echo "$st" | sed -n \'s/.*"status":"\\([a-z]*\\)".*/\\1/p\'); '
    'if [ "$0" = poststart ]; then i=0; while ! grep -q "^workload" "$LOG" && '
    '[ $i -lt 600 ]; do sleep 0.2; i=$((i+1)); done; fi; '
    'echo "$0 $s $HOOKENV $(hostname)" >> "$LOG"; [ "$0" != "$FAIL" ]')


def hook(kind, log, fail=""):
    return {"path": "/bin/sh", "args": ["sh", "-c", SCRIPT, kind],
            "env": ["PATH=/usr/bin:/bin", f"LOG={log}", f"HOOKENV=env-{kind}", f"FAIL={fail}"],
            "timeout": 300}


def hooked_bundle(world, name, fail=""):
    shared = world.tmp / f"w-{name}"
    shared.mkdir()
    mounts = [{"destination": "/w", "type": "bind", "source": str(shared),
               "options": ["rbind", "rw"]}]
    b = world.bundle(["/bin/sh", "-c", 'echo "workload running $GREETING $(hostname)" >> /w/log'],
                     name=name, mounts=mounts)
    config = json.loads((b / "config.json").read_text())
    host = str(shared / "log")
    config["hooks"] = {k: [hook(k, host)] for k in
                       ("createRuntime", "createContainer", "poststart", "poststop")}
    config["hooks"]["startContainer"] = [hook("startContainer", "/w/log", fail)]
    (b / "config.json").write_text(json.dumps(config))
    return b, shared / "log"


def test_all_hook_kinds_in_order(world):  # noqa: F811
    """createRuntime, createContainer (host, state creating), startContainer
    (guest, created, before the workload), poststart (host, running, after
    it), poststop (host, stopped, at delete), the later ones as config.json
    was at create; a failing poststart or poststop hook is a warning and the
    next one runs; no kind is warned about as not applied."""
    b, log = hooked_bundle(world, "h")
    config = json.loads((b / "config.json").read_text())
    for kind in ("poststart", "poststop"):  # a failure warns; the next hook runs
        config["hooks"][kind].insert(0, {"path": "/bin/false", "args": ["false", kind]})
    (b / "config.json").write_text(json.dumps(config))
    # the hooks as created: a config.json changed later changes nothing
    blank = ["sh", "-c", f"echo '{{}}' > {b}/config.json"]
    (_, start, exited, delete), text = drive_created(
        world, b, "h1", [["run", blank], ["start", "h1"], ["wait"], ["delete", "h1"]])
    assert start["rc"] == 0 and delete["rc"] == 0, (start, delete, text)
    assert exited["exit"] == 0, text
    lines = [line.split() for line in log.read_text().splitlines()]
    assert [line[:2] for line in lines] == [
        ["createRuntime", "creating"], ["createContainer", "creating"],
        ["startContainer", "created"], ["workload", "running"],
        ["poststart", "running"], ["poststop", "stopped"]], lines
    for line in lines:
        if line[0] != "workload":
            assert line[2] == f"env-{line[0]}", lines  # each hook its own env
    assert lines[2][3] == "ocibox" and lines[3][-1] == "ocibox", lines  # in the guest
    assert lines[1][3] != "ocibox", lines  # createContainer: on the host
    msgs = [entry["msg"] for entry in world.log_lines()]
    assert not any("hooks" in m for m in msgs), msgs  # no kind "not applied"
    warned = [m for m in msgs if "/bin/false" in m]
    assert len(warned) == 2 and "poststart" in warned[0] and "poststop" in warned[1], msgs


def test_failing_start_container_hook_stops_the_container(world):  # noqa: F811
    """A startContainer hook that fails fails start: the container is
    stopped, its workload never ran, delete runs poststop; nothing is left
    (the fixture checks)."""
    b, log = hooked_bundle(world, "f", fail="startContainer")
    (start, state, exited, delete), text = drive_created(
        world, b, "f1", [["start", "f1"], ["state", "f1"], ["wait"], ["delete", "f1"]])
    assert start["rc"] != 0 and "startContainer" in start["stderr"], start
    assert json.loads(state["stdout"])["status"] == "stopped", state
    assert exited["exit"] != 0
    assert delete["rc"] == 0, delete
    kinds = [line.split()[0] for line in log.read_text().splitlines()]
    assert kinds == ["createRuntime", "createContainer", "startContainer", "poststop"], kinds


def test_failing_create_container_hook_fails_create(world):  # noqa: F811
    """A createContainer hook that fails (its VM already launched) fails
    create: no state, and the VM, its run and its directory are gone at
    once, not left to gc (the fixture checks). Launched and killed, the VM
    never boots."""
    b = world.bundle(["/bin/sh", "-c", "echo must not run"], name="cc")
    config = json.loads((b / "config.json").read_text())
    log = world.tmp / "cc.log"
    config["hooks"] = {"createContainer": [hook("createContainer", str(log), "createContainer")]}
    (b / "config.json").write_text(json.dumps(config))
    create, state = world.drive(["create", "--bundle", str(b), "--pid-file",
                                 str(world.tmp / "cc.pid"), "cc1"], ["state", "cc1"])
    assert create["rc"] != 0 and "createContainer" in create["stderr"], create
    assert state["rc"] != 0 and "does not exist" in state["stderr"], state
    assert log.read_text().split()[:2] == ["createContainer", "creating"]
