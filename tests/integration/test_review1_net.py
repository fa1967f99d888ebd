# SPDX-License-Identifier: Apache-2.0
"""The iptables backend's batches (iptables.c) after a SIGKILLed run: gc
replays "net.rules" and "net.host" and leaves the host namespace as it
was, iptables-nft's own tables included (the world fixture compares the
ruleset, which had no table before). One VM."""
import json

from conftest import BINARY, runs, wait_for_output
from test_network import net_rootfs, netprobe, sh, world  # noqa: F401 (fixtures)


def test_iptables_sigkill_then_gc_leaves_nothing(world):  # noqa: F811
    proc = world.start(["/bin/sh", "-c", "echo ready; sleep 1000"],
                       options=["--firewall", "iptables", "-p", "8080:80",
                                "--egress", "deny", "--allow-egress", "192.0.2.0/24"])
    try:
        wait_for_output(proc, b"ready")
        (run,) = runs(world.runner.run_dir)
        rec = json.loads((run / "record.json").read_text())
        # the run's rules are in (a chain of its own included)
        saved = sh("ip", "netns", "exec", world.host, "iptables-nft-save").stdout
        assert f"ctrj-egress-{run.name}".encode() in saved, saved
    finally:
        proc.kill()
        proc.wait()
    kinds = [e["kind"] for e in rec["undo"]]
    assert "net.rules" in kinds and "net.host" in kinds, kinds
    assert kinds.index("net.host") < kinds.index("net.rules"), kinds  # undone after
    sh("nsenter", f"--net=/var/run/netns/{world.host}", str(BINARY), "gc",
       env=world.runner.env())
    assert not runs(world.runner.run_dir)


def test_iptables_teardown_keeps_a_drop_policy_set_since(world):  # noqa: F811
    """iptables-nft made the filter table and FORWARD for the run (none
    before); the host set FORWARD's policy to DROP while it ran: teardown
    removes the run's rules but leaves the chain and its policy (deleting
    the emptied chain would open forwarding)."""
    proc = world.start(["/bin/sh", "-c", "echo ready; sleep 1000"],
                       options=["--firewall", "iptables"])
    try:
        wait_for_output(proc, b"ready")
        sh("ip", "netns", "exec", world.host, "iptables-nft", "-P", "FORWARD", "DROP")
    finally:
        proc.terminate()
        proc.wait()
    assert not runs(world.runner.run_dir)
    chain = sh("ip", "netns", "exec", world.host, "nft", "-j", "list", "chain", "ip", "filter",
               "FORWARD", check=False)
    policy = sh("ip", "netns", "exec", world.host, "iptables-nft", "-S", "FORWARD").stdout
    sh("ip", "netns", "exec", world.host, "nft", "flush", "ruleset")  # as the world was
    assert chain.returncode == 0, chain.stderr  # the chain is still there
    assert b"-P FORWARD DROP" in policy, policy
    assert b"ctr-jailer" not in policy, policy  # the run's rules are gone
