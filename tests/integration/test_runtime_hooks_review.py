# SPDX-License-Identifier: Apache-2.0
"""config.json's hooks that are malformed: create refuses them with one
line saying what is wrong, before anything is made (no VM is launched),
instead of aborting half way (json-c asserts on an array length asked of
a non-array)."""
import json

from test_runtime import world  # noqa: F401 (the fixture)

BAD = {
    "args-not-array": ({"prestart": [{"path": "/bin/true", "args": "true"}]}, "args"),
    "env-not-strings": ({"createRuntime": [{"path": "/bin/true", "env": [1]}]}, "env"),
    "kind-not-array": ({"poststop": {"path": "/bin/true"}}, "poststop"),
    "unknown-kind-not-array": ({"someday": "x"}, "someday"),
    "path-relative": ({"createContainer": [{"path": "true"}]}, "absolute"),
    "hook-not-object": ({"startContainer": ["/bin/true"]}, "startContainer"),
}


def test_malformed_hooks_fail_create_cleanly(world):  # noqa: F811
    """Each malformed hooks config fails create with an error naming the
    field (no abort), leaves no state (the fixture checks) and runs no
    hook; a well-formed one beside it is not run either."""
    marker = world.tmp / "ran"
    steps = []
    for name, (hooks, _) in BAD.items():
        b = world.bundle(["/bin/true"], name=name)
        config = json.loads((b / "config.json").read_text())
        config["hooks"] = {"createRuntime": [{"path": "/bin/sh",
                                              "args": ["sh", "-c", f"touch {marker}"]}],
                           **hooks}
        (b / "config.json").write_text(json.dumps(config))
        steps.append(["create", "--bundle", str(b), "--pid-file",
                      str(world.tmp / f"{name}.pid"), name])
    out = world.drive(*steps)
    for (name, (_, word)), res in zip(BAD.items(), out):
        assert res["rc"] == 1, (name, res)  # an error, not SIGABRT (134)
        assert word in res["stderr"] and "hook" in res["stderr"], (name, res)
    assert not marker.exists()


def test_a_hook_cannot_change_the_state_the_next_one_reads(world):  # noqa: F811
    """Hooks of a kind share the state on their stdin: one that writes to
    it (its stdin is the state's file) must not change what the next one
    reads. The second fails on purpose: create stops before any VM."""
    seen = world.tmp / "seen"
    b = world.bundle(["/bin/true"], name="s")
    config = json.loads((b / "config.json").read_text())
    config["hooks"] = {"prestart": [
        {"path": "/bin/sh", "args": ["sh", "-c", '{ printf "%-400s" forged >&0; } 2>/dev/null; true']},
        {"path": "/bin/sh", "args": ["sh", "-c", f"cat > {seen}; exit 1"]}]}
    (b / "config.json").write_text(json.dumps(config))
    (create,) = world.drive(["create", "--bundle", str(b), "--pid-file",
                             str(world.tmp / "s.pid"), "s1"])
    assert create["rc"] == 1, create
    state = json.loads(seen.read_text())
    assert state["id"] == "s1" and state["status"] == "creating", state


def test_two_starts_at_once_run_the_start_hooks_once(world):  # noqa: F811
    """Two `start`s of one created container at once (an engine retrying):
    one starts it, the other fails; the startContainer and poststart hooks
    run once, the workload once."""
    from test_runtime import drive_created
    shared = world.tmp / "w"
    shared.mkdir()
    b = world.bundle(["/bin/sh", "-c", "echo workload >> /w/log"], name="d",
                     mounts=[{"destination": "/w", "type": "bind", "source": str(shared),
                              "options": ["rbind", "rw"]}])
    config = json.loads((b / "config.json").read_text())
    config["hooks"] = {
        "startContainer": [{"path": "/bin/sh", "args": ["sh", "-c", "echo sc >> /w/log"]}],
        "poststart": [{"path": "/bin/sh", "args": ["sh", "-c", f"echo ps >> {shared}/ps"]}]}
    (b / "config.json").write_text(json.dumps(config))
    rt = " ".join(world.rt())
    both = ["sh", "-c", f"{rt} start d1 & {rt} start d1; a=$?; wait $!; echo $a $?"]
    (both_rc, exited, delete), _ = drive_created(
        world, b, "d1", [["run", both], ["wait"], ["delete", "d1"]])
    assert sorted(both_rc["stdout"].split()) == ["0", "1"], both_rc
    assert exited["exit"] == 0 and delete["rc"] == 0, (exited, delete)
    assert (shared / "log").read_text().split() == ["sc", "workload"]
    assert (shared / "ps").read_text().split() == ["ps"]
