# SPDX-License-Identifier: Apache-2.0
"""Networking on real VMs. Every test builds its own world: a "host" network
namespace where ctr-jailer runs and a veth uplink to an "upstream" namespace
that plays the internet (a DNS server and TCP/UDP servers). No packet leaves
these namespaces; the root namespace is never touched."""
import json
import os
import shutil
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from conftest import (BINARY, REPO, links_settled, qemu_processes_for, runs, settled,
                      wait_for_output)

HOST_IP, UP_IP = "192.0.2.1", "192.0.2.2"


def sh(*args, check=True, **kw):
    return subprocess.run(list(args), check=check, capture_output=True, **kw)


@pytest.fixture(scope="session")
def netprobe(tmp_path_factory):
    out = tmp_path_factory.mktemp("netprobe") / "netprobe"
    sh("musl-gcc", "-static", "-O2", "-o", str(out), str(REPO / "tests/integration/netprobe.c"))
    return out


@pytest.fixture(scope="session")
def net_rootfs(busybox_rootfs, netprobe, tmp_path_factory):
    root = tmp_path_factory.mktemp("rootfs-net") / "root"
    shutil.copytree(busybox_rootfs, root, symlinks=True)
    shutil.copy(netprobe, root / "netprobe")
    return root


class World:
    def __init__(self, runner, netprobe, rootfs):
        tag = uuid.uuid4().hex[:8]
        self.host, self.up = f"cjh{tag}", f"cju{tag}"
        self.runner, self.netprobe, self.rootfs = runner, netprobe, rootfs
        self.procs = []
        sh("ip", "netns", "add", self.host)
        sh("ip", "netns", "add", self.up)
        sh("ip", "link", "add", "uplink", "netns", self.host, "type", "veth", "peer", "name",
           "wan", "netns", self.up)
        sh("ip", "-n", self.host, "addr", "add", f"{HOST_IP}/24", "dev", "uplink")
        sh("ip", "-n", self.up, "addr", "add", f"{UP_IP}/24", "dev", "wan")
        for ns, dev in ((self.host, "uplink"), (self.up, "wan")):
            sh("ip", "-n", ns, "link", "set", dev, "up")
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        sh("ip", "-n", self.host, "route", "add", "default", "via", UP_IP)
        # the host namespace's resolver is the upstream DNS server
        self.etc = Path("/etc/netns") / self.host
        self.etc.mkdir(parents=True)
        (self.etc / "resolv.conf").write_text(f"nameserver {UP_IP}\n")
        self.spawn(self.up, [str(netprobe), "serve-tcp", "7000", "upstream-tcp"])
        self.spawn(self.up, [str(netprobe), "serve-udp", "7001", "upstream-udp"])
        self.spawn(self.up, ["dnsmasq", "--no-daemon", "--no-resolv", "--no-hosts",
                             f"--listen-address={UP_IP}", "--bind-interfaces",
                             f"--address=/upstream.test/{UP_IP}", "--pid-file="])
        time.sleep(0.3)

    def spawn(self, ns, argv):
        p = subprocess.Popen(["ip", "netns", "exec", ns, *argv], stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL)
        self.procs.append(p)
        return p

    def argv(self, args, options=()):
        # nsenter, not `ip netns exec`, which remounts /sys and hides the
        # cgroup hierarchy the jail needs; the namespace's resolv.conf is
        # bound in a private mount namespace instead.
        return ["nsenter", f"--net=/var/run/netns/{self.host}", "unshare", "-m",
                "--propagation", "private", "sh", "-c",
                'mount --bind "$0" /etc/resolv.conf && exec "$@"', str(self.etc / "resolv.conf"),
                *self.runner.argv(args, rootfs=self.rootfs,
                                  options=["--network", "tap", *options])]

    def run(self, args, options=(), env=None, timeout=180):
        return subprocess.run(self.argv(args, options), env=self.runner.env(env),
                              capture_output=True, timeout=timeout)

    def start(self, args, options=(), env=None):
        return subprocess.Popen(self.argv(args, options), env=self.runner.env(env),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def snapshot(self):
        """Firewall rules and links of the host namespace."""
        def ns(*cmd):
            return sh("ip", "netns", "exec", self.host, *cmd, check=False).stdout
        strip = lambda out: b"\n".join(l for l in out.splitlines() if not l.startswith(b"#"))
        return (ns("nft", "list", "ruleset"), strip(ns("iptables-legacy-save")),
                strip(ns("iptables-nft-save")), sh("ip", "-n", self.host, "-o", "link").stdout)

    def close(self):
        for p in self.procs:
            p.kill()
            p.wait()
        shutil.rmtree(self.etc, ignore_errors=True)
        sh("ip", "netns", "del", self.host, check=False)
        sh("ip", "netns", "del", self.up, check=False)


@pytest.fixture
def world(runner, netprobe, net_rootfs):
    w = World(runner, netprobe, net_rootfs)
    before = w.snapshot()
    yield w
    after = settled(w.snapshot, before)
    w.close()
    assert after == before, "host namespace firewall or links changed by the run"


def test_guest_reaches_upstream_by_address_and_name_through_nat(world):
    r = world.run(["/bin/sh", "-c", "/netprobe tcp 192.0.2.2 7000; /netprobe udp 192.0.2.2 7001; "
                   "/netprobe resolve upstream.test; cat /etc/resolv.conf"])
    assert r.returncode == 0, r.stderr
    out = r.stdout.decode()
    # the upstream sees the uplink's address (masquerade), not the guest's
    assert f"upstream-tcp from {HOST_IP}" in out
    assert f"upstream-udp from {HOST_IP}" in out
    assert f"{UP_IP}\n" in out                     # resolved by name via the host's DNS
    assert f"nameserver {UP_IP}" in out


def test_network_none_has_no_route_out(world):
    r = world.run(["/bin/sh", "-c", "/netprobe tcp 192.0.2.2 7000; ls /sys/class/net"],
                  options=["--network", "none"])
    assert b"unreachable" in r.stdout
    assert r.stdout.split()[-1] == b"lo"


def published(world, options=(), env=None):
    script = ("/netprobe serve-tcp 80 guest-tcp & /netprobe serve-udp 53 guest-udp & "
              "sleep 0.5; echo ready; wait")
    proc = world.start(["/bin/sh", "-c", script], options=options, env=env)
    wait_for_output(proc, b"ready")
    return proc


def test_published_tcp_and_udp_ports(world):
    proc = published(world, options=["-p", "8080:80", "-p", "5353:53/udp"])
    try:
        from_up_tcp = sh("ip", "netns", "exec", world.up, str(world.netprobe), "tcp", HOST_IP,
                         "8080", check=False).stdout
        from_up_udp = sh("ip", "netns", "exec", world.up, str(world.netprobe), "udp", HOST_IP,
                         "5353", check=False).stdout
        from_host = sh("ip", "netns", "exec", world.host, str(world.netprobe), "tcp", HOST_IP,
                       "8080", check=False).stdout
        unpublished = sh("ip", "netns", "exec", world.up, str(world.netprobe), "tcp", HOST_IP,
                         "8081", check=False).stdout
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=120)
    assert from_up_tcp.startswith(b"guest-tcp from"), from_up_tcp
    assert from_up_udp.startswith(b"guest-udp from"), from_up_udp
    assert from_host.startswith(b"guest-tcp from"), from_host
    assert b"unreachable" in unpublished          # negative control


def test_publish_env_form_and_conflict(world):
    proc = published(world, env={"PUBLISH": "8080:80,5353:53/udp"})
    try:
        reply = sh("ip", "netns", "exec", world.up, str(world.netprobe), "tcp", HOST_IP, "8080",
                   check=False).stdout
        second = world.run(["/bin/true"], options=["-p", "8080:80"])
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=120)
    assert reply.startswith(b"guest-tcp from")
    assert second.returncode == 125
    assert b"already published" in second.stderr


def test_guests_are_isolated_from_each_other_and_the_host(world):
    # a service on the host namespace, listening on every address
    world.spawn(world.host, [str(world.netprobe), "serve-tcp", "9999", "host-service"])
    a = world.start(["/bin/sh", "-c", "/netprobe addr; /netprobe serve-tcp 80 guest-a"])
    out = wait_for_output(a, b"serving")
    addr_a = [l.split()[1] for l in out.decode().splitlines() if l.startswith("addr ")][0]
    try:
        b = world.run(["/bin/sh", "-c",
                       f"/netprobe addr; /netprobe tcp {addr_a.decode() if isinstance(addr_a, bytes) else addr_a} 80; "
                       "gw=$(awk '$2==\"00000000\"{print $3}' /proc/net/route); "
                       "/netprobe tcp 192.0.2.1 9999; /netprobe tcp 192.0.2.2 7000"])
    finally:
        a.send_signal(signal.SIGTERM)
        a.communicate(timeout=120)
    lines = b.stdout.decode().splitlines()
    addr_b = lines[0].split()[1]
    assert addr_a != addr_b                        # distinct /30s
    assert lines[1] == "unreachable"               # the other guest
    assert lines[2] == "unreachable"               # host services via the host
    assert lines[3].startswith("upstream-tcp")     # control: the way out works


def test_iptables_host_with_forward_drop(world):
    sh("ip", "netns", "exec", world.host, "iptables-nft", "-P", "FORWARD", "DROP")
    before = world.snapshot()
    r = world.run(["/netprobe", "tcp", UP_IP, "7000"])
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(f"upstream-tcp from {HOST_IP}".encode())
    assert settled(world.snapshot, before) == before
    # negative control: with no firewall rules of ours, DROP wins
    r = world.run(["/netprobe", "tcp", UP_IP, "7000"], options=["--firewall", "none"])
    assert b"unreachable" in r.stdout
    sh("ip", "netns", "exec", world.host, "iptables-nft", "-P", "FORWARD", "ACCEPT")
    sh("ip", "netns", "exec", world.host, "iptables-nft-save")  # leave the table as found:
    sh("ip", "netns", "exec", world.host, "nft", "flush", "ruleset")


def test_tap_ip_used_exactly_and_bad_values_refused(world):
    r = world.run(["/netprobe", "addr"], env={"TAP_IP": "10.77.0.1/30"})
    assert r.returncode == 0, r.stderr
    assert b"addr 10.77.0.2" in r.stdout
    for bad, needle in (("10.77.0.1/24", b"/30"), ("not-an-ip", b"invalid"),
                        (f"{HOST_IP}/30", b"overlaps"), ("10.77.0.0/30", b"network")):
        r = world.run(["/bin/true"], env={"TAP_IP": bad})
        assert r.returncode == 125, bad
        assert needle in r.stderr, (bad, r.stderr)


def test_ten_concurrent_starts_never_collide(world):
    procs = [world.start(["/netprobe", "addr"]) for _ in range(10)]
    addrs = []
    for p in procs:
        out, err = p.communicate(timeout=600)
        assert p.returncode == 0, err
        addrs.append(out.split()[1])
    assert len(set(addrs)) == 10


def test_sigkill_leaves_a_record_that_gc_replays(world):
    """A SIGKILLed run leaves its record.json: the VMM it started and each
    network change, written before the change was made (the TAP before
    the rules on it, the ports it claims); gc replays it. The fixture
    checks that the host's rules and links are back as they were."""
    proc = world.start(["/bin/sh", "-c", "echo ready; sleep 1000"],
                       options=["-p", "8080:80", "-p", "5353:53/udp"])
    try:
        wait_for_output(proc, b"ready")
        (run,) = runs(world.runner.run_dir)
        rec = json.loads((run / "record.json").read_text())
    finally:
        proc.kill()
        proc.wait()
    assert (rec["version"], rec["id"], rec["state"]) == (1, run.name, "running")
    assert rec["vmm"]["pid"] > 0 and rec["owner"]["pid"] > 0
    undo = rec["undo"]
    assert {"kind": "net.tap", "name": f"cj-{run.name}"} in undo
    assert {"kind": "net.port", "proto": "tcp", "port": 8080} in undo
    assert {"kind": "net.port", "proto": "udp", "port": 5353} in undo
    kinds = [e["kind"] for e in undo]
    firewall = [i for i, k in enumerate(kinds) if k in ("net.table", "net.rule")]
    assert firewall and min(firewall) > kinds.index("net.tap"), kinds
    sh("nsenter", f"--net=/var/run/netns/{world.host}", str(BINARY), "gc",
       env=world.runner.env())
    assert not runs(world.runner.run_dir)
    assert b"cj-" not in links_settled(world.host)


def test_stop_signals_during_teardown_leave_nothing(world):
    """A stop signal, then one every 5 ms (Ctrl-C held down, a supervisor
    re-sending SIGTERM) until the runtime exits: the later ones land while
    teardown replays the record. The runtime must end by itself (an exit
    status, not death by signal) with its run directory, TAP and rules gone
    (the fixture compares the rules). Failed on the first merge of the
    redesign, which unblocked the signals before the replay."""
    proc = world.start(["/bin/sh", "-c", "echo ready; sleep 1000"], options=["-p", "8080:80"])
    wait_for_output(proc, b"ready")
    while proc.poll() is None:
        try:
            os.kill(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            break
        time.sleep(0.005)
    proc.wait()
    assert proc.returncode >= 0, f"killed by signal {-proc.returncode}"
    assert not runs(world.runner.run_dir)
    assert b"cj-" not in links_settled(world.host)


def test_sigkill_leftovers_removed_by_next_run_and_gc(world):
    for cleanup in ("next-run", "gc"):
        proc = world.start(["/bin/sh", "-c", "echo ready; sleep 1000"], options=["-p", "8080:80"])
        wait_for_output(proc, b"ready")
        proc.kill()
        proc.wait()
        assert b"cj-" in sh("ip", "-n", world.host, "-o", "link").stdout   # left behind
        if cleanup == "gc":
            sh("nsenter", f"--net=/var/run/netns/{world.host}", str(BINARY), "gc",
               env=world.runner.env())
        else:
            r = world.run(["/bin/true"], options=["-p", "8080:80"])   # port is free again
            assert r.returncode == 0, r.stderr
        assert b"cj-" not in links_settled(world.host)
