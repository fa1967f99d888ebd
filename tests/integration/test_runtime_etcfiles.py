# SPDX-License-Identifier: Apache-2.0
"""A guest that fails while it boots, before `start` (containerd's `ctr run
-d` reads no container output then): `start` fails with the guest's own
reason, not only "the VM ended", and `delete` leaves nothing on the host.
The engine's /etc files' share serving those files alone is checked in
test_runtime_guestproc.py (its VM)."""
from test_runtime import drive_created, world  # noqa: F401 (fixtures)


def test_boot_failure_says_why(world):  # noqa: F811
    """start right after create (ctr's pace: the guest fails while start
    waits for it), and start once the run has ended (its agent gone)."""
    rt = " ".join(world.rt())
    for cid, wait in (("g1", []), ("g2", [["run", ["sh", "-c", (
            f"for i in $(seq 600); do {rt} state g2 | grep -q '\"stopped\"' && exit 0;"
            " sleep 0.2; done; exit 1")]]])):
        # a tmpfs under a file of the image: the guest init cannot mount it
        b = world.bundle(["/bin/sh", "-c", "echo never"], name=f"b-{cid}",
                         mounts=[{"destination": "/etc/passwd/x", "type": "tmpfs",
                                  "source": "tmpfs"}])
        steps = [*wait, ["start", cid], ["state", cid], ["delete", cid]]
        res, text = drive_created(world, b, cid, steps)
        (start, state, delete) = res[len(wait):]
        assert all(w["rc"] == 0 for w in res[:len(wait)]), res
        assert start["rc"] != 0, (start, text)
        assert "ended before it started" in start["stderr"], start
        # the guest's reason, as its console said it
        assert "mount a tmpfs on /etc/passwd/x: Not a directory" in start["stderr"], start
        assert "never" not in text, text
        assert '"stopped"' in state["stdout"] and delete["rc"] == 0, (state, delete)
        assert not (world.root / cid).exists()  # (the world fixture checks no run is left)
