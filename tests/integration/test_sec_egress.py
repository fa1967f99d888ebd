# SPDX-License-Identifier: Apache-2.0
"""What a guest can reach on the way out (issue 11, points 5 and 6), tried as
an attacker would, in the namespace "world" of test_network.py: a host
namespace where ctr-jailer runs and an upstream namespace that plays the
internet. The upstream also holds a cloud metadata address
(169.254.169.254) with an HTTP-port server, a second address and a second
network; the host holds a link-local address of its own with a service.

Each firewall backend is tried: nftables (a table per VM) and the tagged
iptables rules (iptables-nft; iptables-legacy's tables would appear in the
namespace's snapshot just by being used)."""
import subprocess

import pytest

from conftest import BINARY, runs, wait_for_output
from test_network import HOST_IP, UP_IP, net_rootfs, netprobe, sh, world  # noqa: F401

OTHER_IP = "192.0.2.3"            # a second upstream address, same servers
FAR_IP = "198.51.100.7"           # an upstream host on another network
METADATA_IP = "169.254.169.254"   # the cloud metadata service, upstream
HOST_LL_IP = "169.254.1.1"        # a link-local address of the host itself

BACKENDS = ["nft", "iptables"]

# name: netprobe arguments. Run in parallel in the guest (each unreachable
# probe costs its 3 s timeout), one "name => reply" line each.
PROBES = {
    "allowed-tcp": f"tcp {UP_IP} 7000",
    "allowed-udp": f"udp {UP_IP} 7000",
    "other-addr": f"tcp {OTHER_IP} 7000",
    "other-port": f"tcp {UP_IP} 7002",
    "other-port-udp": f"udp {UP_IP} 7001",
    "far-net": f"tcp {FAR_IP} 7000",
    "far-net-port": f"tcp {FAR_IP} 7002",
    "dns": "resolve upstream.test",
    "metadata": f"tcp {METADATA_IP} 80",
    "host-link-local": f"tcp {HOST_LL_IP} 7100",
}


def probe_script(then="true"):
    jobs = " ".join(f'(echo "{name} => $(/netprobe {args})") &' for name, args in PROBES.items())
    return f"{jobs} wait; echo probes-done; {then}"


def results(out: bytes) -> dict:
    found = {}
    for line in out.decode(errors="replace").splitlines():
        name, sep, reply = line.partition(" => ")
        if sep and name in PROBES:
            found[name] = reply
    assert set(found) == set(PROBES), out
    return found


def reached(reply: str) -> bool:
    return reply not in ("unreachable", "unresolved", "")


@pytest.fixture
def egress_world(world):
    """The world, plus the addresses and servers these tests aim at."""
    sh("ip", "-n", world.up, "addr", "add", f"{OTHER_IP}/24", "dev", "wan")
    sh("ip", "-n", world.up, "addr", "add", f"{FAR_IP}/32", "dev", "lo")
    sh("ip", "-n", world.up, "addr", "add", f"{METADATA_IP}/32", "dev", "wan")
    # the metadata address is routed through the uplink (the default route
    # would do it too; this is what a cloud host has)
    sh("ip", "-n", world.host, "route", "add", f"{METADATA_IP}/32", "via", UP_IP)
    sh("ip", "-n", world.host, "addr", "add", f"{HOST_LL_IP}/32", "dev", "uplink")
    up = world.netprobe
    world.spawn(world.up, [str(up), "serve-tcp", "80", "metadata"])
    world.spawn(world.up, [str(up), "serve-udp", "7000", "upstream-udp7000"])
    world.spawn(world.up, [str(up), "serve-tcp", "7002", "upstream-tcp7002"])
    world.spawn(world.host, [str(up), "serve-tcp", "7100", "host-link-local"])
    for ns, port in ((world.up, 80), (world.up, 7002), (world.host, 7100)):
        wait_listening(ns, port)
    return world


def wait_listening(ns, port):
    for _ in range(50):
        out = sh("ip", "netns", "exec", ns, "ss", "-Htln", f"sport = :{port}").stdout
        if out.strip():
            return
        subprocess.run(["sleep", "0.1"])
    raise AssertionError(f"nothing listens on {port} in {ns}")


@pytest.mark.parametrize("backend", BACKENDS)
def test_link_local_dropped_unless_allowed(egress_world, backend):
    w = egress_world
    r = w.run(["/bin/sh", "-c", probe_script()], options=["--firewall", backend])
    assert r.returncode == 0, r.stderr
    default = results(r.stdout)
    # the cloud metadata service is out of reach by default...
    assert default["metadata"] == "unreachable", default
    # ...and so is a link-local address of the host itself
    assert default["host-link-local"] == "unreachable", default
    # default egress is "allow": everything else upstream answers (this is
    # the negative control of the egress policy test below)
    for name in ("allowed-tcp", "allowed-udp", "other-addr", "other-port", "other-port-udp",
                 "far-net", "far-net-port", "dns"):
        assert reached(default[name]), (name, default)
    assert default["other-addr"] == f"upstream-tcp from {HOST_IP}"

    # negative control: --allow-link-local reopens the way to the metadata
    # service (the host's own services stay closed to the guest)
    r = w.run(["/bin/sh", "-c", probe_script()],
              options=["--firewall", backend, "--allow-link-local"])
    assert r.returncode == 0, r.stderr
    allowed = results(r.stdout)
    assert allowed["metadata"] == f"metadata from {HOST_IP}", allowed
    assert allowed["host-link-local"] == "unreachable", allowed


@pytest.mark.parametrize("backend", BACKENDS)
def test_egress_deny_reaches_only_what_is_allowed(egress_world, backend):
    w = egress_world
    serve = "/netprobe serve-tcp 80 guest-tcp"
    proc = w.start(["/bin/sh", "-c", probe_script(then=serve)],
                   options=["--firewall", backend, "--egress", "deny",
                            "--allow-egress", f"{UP_IP}:7000",
                            "--allow-egress", "198.51.100.0/24", "-p", "8080:80"])
    try:
        out = wait_for_output(proc, b"serving 80")
        # a published port still answers: replies to inbound connections
        # are not egress
        inbound = sh("ip", "netns", "exec", w.up, str(w.netprobe), "tcp", HOST_IP, "8080",
                     check=False).stdout
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=120)
    got = results(out)
    assert got["allowed-tcp"] == f"upstream-tcp from {HOST_IP}", got
    assert got["allowed-udp"] == f"upstream-udp7000 from {HOST_IP}", got  # PORT: tcp and udp
    assert got["far-net"].startswith("upstream-tcp from"), got        # a CIDR: every port
    assert got["far-net-port"].startswith("upstream-tcp7002 from"), got
    assert got["dns"] == UP_IP, got                          # the resolver, always
    assert got["other-addr"] == "unreachable", got           # another upstream address
    assert got["other-port"] == "unreachable", got           # another port
    assert got["other-port-udp"] == "unreachable", got
    assert got["metadata"] == "unreachable", got
    assert inbound.startswith(b"guest-tcp from"), (inbound, err)


@pytest.fixture
def bad(runner):
    def run(options):
        argv = [str(BINARY), "run", "--rootfs", str(runner.rootfs), "--network", "tap",
                *options, "--", "/bin/true"]
        r = subprocess.run(argv, env=runner.env(), capture_output=True, timeout=60)
        lines = r.stderr.decode().splitlines()
        assert r.returncode == 125, r.stderr
        assert len(lines) == 1, lines
        assert not runs(runner.run_dir)
        return lines[0]
    return run


@pytest.mark.parametrize("options, needle", [
    (["--egress", "maybe"], "--egress 'maybe' is invalid"),
    (["--allow-egress", "10.0.0.0/33"], "--allow-egress '10.0.0.0/33' is invalid"),
    (["--allow-egress", "10.1.2.3/8"], "host bits"),
    (["--allow-egress", "10.0.0.0/8:99999"], "--allow-egress '10.0.0.0/8:99999' is invalid"),
    (["--allow-egress", "10.0.0.0/8:80/sctp"], "is invalid"),
    (["--egress", "allow", "--allow-egress", "10.0.0.0/8"], "--egress allow"),
    (["--egress", "deny", "--firewall", "none"], "--firewall none"),
    (["--allow-egress", "169.254.169.254:80"], "--allow-link-local"),
])
def test_bad_egress_options_refused_before_anything_is_created(bad, options, needle):
    line = bad(options)
    assert needle in line, line
