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
