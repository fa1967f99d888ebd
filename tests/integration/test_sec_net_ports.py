# SPDX-License-Identifier: Apache-2.0
"""The VM's network edge as an attacker sees it (issue 11, points 1-4):
IPv6 on the TAP, published ports that catch traffic not addressed to the
host, published ports on the host's loopback, and host ports already taken.

Every test runs in the namespace world of test_network.py: ctr-jailer runs in
a "host" namespace with a veth uplink to an "upstream" namespace. The root
namespace is never touched."""
import os
import re
import shutil
import signal
import subprocess
import time

import pytest

from conftest import BINARY, REPO, links_settled, wait_for_output
from test_network import HOST_IP, UP_IP, World, netprobe, sh  # noqa: F401 (netprobe: fixture)

BACKENDS = ["nft", "iptables-nft", "iptables-legacy"]
# Applets the hostile guest uses on top of the common ones.
EXTRA_APPLETS = ["httpd", "nc", "ip"]
RA_PREFIX = "2001:db8:cafe:"


@pytest.fixture(scope="session")
def net6probe(tmp_path_factory):
    out = tmp_path_factory.mktemp("net6probe") / "net6probe"
    sh("musl-gcc", "-static", "-O2", "-o", str(out), str(REPO / "tests/integration/net6probe.c"))
    return out


@pytest.fixture(scope="session")
def sec_rootfs(busybox_rootfs, netprobe, net6probe, tmp_path_factory):
    root = tmp_path_factory.mktemp("rootfs-sec-net") / "root"
    shutil.copytree(busybox_rootfs, root, symlinks=True)
    shutil.copy(netprobe, root / "netprobe")
    shutil.copy(net6probe, root / "net6probe")
    for applet in EXTRA_APPLETS:
        if not (root / "bin" / applet).exists():
            (root / "bin" / applet).symlink_to("busybox")
    (root / "www").mkdir()
    (root / "www/index.html").write_text("guest-http\n")
    return root


def host_state(w):
    """Everything of the host namespace a run may change: the rulesets of
    every backend and family, links, IPv6 addresses and routes, and the
    route_localnet switches that must never be turned on for all devices."""
    def ns(*cmd):
        return sh("ip", "netns", "exec", w.host, *cmd, check=False).stdout

    def rules(save):
        # legacy xtables stay instantiated once used in a namespace: an
        # empty table with ACCEPT policies is as good as none
        return [l for l in save.splitlines()
                if not re.match(rb"^(#|\*|COMMIT$|:[A-Z]+ ACCEPT \[\d+:\d+\]$)", l)]
    return (ns("nft", "list", "ruleset"),
            rules(ns("iptables-legacy-save")), rules(ns("iptables-nft-save")),
            rules(ns("ip6tables-legacy-save")), rules(ns("ip6tables-nft-save")),
            sh("ip", "-n", w.host, "-o", "link").stdout, ipv6_state(w), localnet(w))


def ipv6_state(w):
    return (sh("ip", "-n", w.host, "-6", "route", "show", "table", "all").stdout,
            sh("ip", "-n", w.host, "-6", "addr").stdout)


def settle_ipv6(w):
    """Wait for the uplink's link-local address to leave DAD, so that the
    IPv6 state compared later does not move on its own."""
    for _ in range(100):
        if not sh("ip", "-n", w.host, "-6", "addr", "show", "tentative").stdout:
            return
        time.sleep(0.1)
    raise AssertionError("IPv6 addresses of the host namespace stay tentative")


def localnet(w):
    return sh("ip", "netns", "exec", w.host, "cat", "/proc/sys/net/ipv4/conf/all/route_localnet",
              "/proc/sys/net/ipv4/conf/default/route_localnet").stdout


@pytest.fixture
def world(runner, netprobe, sec_rootfs):
    w = World(runner, netprobe, sec_rootfs)
    settle_ipv6(w)
    before = host_state(w)
    yield w
    after = host_state(w)
    w.close()
    assert after == before, "host namespace rules, links or IPv6 state changed by the run"


def in_host(w, *cmd):
    return sh("ip", "netns", "exec", w.host, *cmd, check=False)


def ro_proc_sys(argv):
    """argv run with /proc/sys read-only, as in an unprivileged container:
    the per-device sysctls cannot be written and the firewall is the only
    wall left."""
    return ["unshare", "-m", "--propagation", "private", "sh", "-c",
            'mount --bind /proc/sys /proc/sys && mount -o remount,bind,ro /proc/sys && '
            'exec "$@"', "sh", *argv]


# ---- 1. IPv6 on the TAP ----------------------------------------------------

GUEST_V6 = (
    f"/netprobe addr; /netprobe tcp {UP_IP} 7000; "        # IPv4 works; ARP knows the host
    "/net6probe wait-ll; /net6probe ping-all; /net6probe tcp-gw 9996; "
    "echo ready-for-ra; nc -l -p 5000 </dev/null >/dev/null; "  # the test snapshots, then pokes
    "/net6probe ra; sleep 1000")


def poke_until(w, proc, guest, marker, timeout=60):
    """Connect to the guest's port 5000 until it goes on to print marker
    (its listener may not be up yet when the host first tries); returns
    what it printed meanwhile."""
    buf = b""
    deadline = time.monotonic() + timeout
    os.set_blocking(proc.stdout.fileno(), False)
    while marker not in buf:
        if time.monotonic() > deadline or proc.poll() is not None:
            raise AssertionError(f"{marker!r} not seen; output so far: {buf!r}")
        in_host(w, str(w.netprobe), "tcp", guest, "5000")
        for _ in range(20):
            buf += proc.stdout.read() or b""
            if marker in buf:
                break
            time.sleep(0.1)
    os.set_blocking(proc.stdout.fileno(), True)
    return buf


def hostile_ipv6_guest(w, options=(), ro=False):
    """Boot the IPv6 attacker; return what it saw and the host's IPv6 state
    before the VM, just before its Router Advertisements, and after them."""
    before_vm = ipv6_state(w)
    argv = w.argv(["/bin/sh", "-c", GUEST_V6], options)
    if ro:
        argv = ro_proc_sys(argv)
    proc = subprocess.Popen(argv, env=w.runner.env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        out = wait_for_output(proc, b"ready-for-ra", timeout=240)
        before_ra = ipv6_state(w)
        guest = [l.split()[1] for l in out.decode().splitlines() if l.startswith("addr ")][0]
        out += poke_until(w, proc, guest, b"ra-sent")
        time.sleep(1.5)                     # the host handles RAs asynchronously
        after_ra = ipv6_state(w)
    finally:
        proc.send_signal(signal.SIGTERM)
        rest, err = proc.communicate(timeout=120)
    return (out + rest).decode(), err.decode(), before_vm, before_ra, after_ra


def assert_host_silent_on_ipv6(out, before_ra, after_ra):
    lines = out.splitlines()
    assert any(l.startswith("upstream-tcp from") for l in lines), out   # control: IPv4 works
    assert any(l.startswith("self fe80:") for l in lines), out         # the guest has IPv6
    assert "ping-done 0" in lines, out                                 # nobody else answered
    tcp6 = [l for l in lines if l.startswith("tcp6 ")]
    assert tcp6 and tcp6[0].endswith(" unreachable"), out              # no host service on [::]
    assert "ra-sent 3" in lines, out
    routes, addrs = after_ra
    assert b"default" not in routes and RA_PREFIX.encode() not in routes, routes.decode()
    assert RA_PREFIX.encode() not in addrs, addrs.decode()
    assert after_ra == before_ra


@pytest.fixture
def host_v6_service(world, net6probe):
    p = world.spawn(world.host, [str(net6probe), "serve-tcp6", "9996", "host-v6-service"])
    assert p.stdout.readline().startswith(b"serving")


def test_guest_ipv6_reaches_nothing_on_the_host(world, host_v6_service):
    out, err, before_vm, before_ra, after_ra = hostile_ipv6_guest(world)
    assert_host_silent_on_ipv6(out, before_ra, after_ra)
    # with IPv6 off on the TAP, the host's IPv6 state never changed at all
    assert after_ra == before_vm


@pytest.mark.parametrize("backend", BACKENDS)
def test_ipv6_firewall_wall_when_proc_sys_is_read_only(world, host_v6_service, backend):
    in_host(world, "sysctl", "-w", "net.ipv4.ip_forward=1")
    out, err, _, before_ra, after_ra = hostile_ipv6_guest(
        world, options=["--firewall", backend], ro=True)
    assert_host_silent_on_ipv6(out, before_ra, after_ra)
    assert "IPv6" in err                   # the fallback is said, in one line


def test_ipv6_negative_control_without_firewall(world, host_v6_service):
    """With /proc/sys read-only and no firewall there is no wall: the RA is
    taken. This proves the test above sees what the firewall stops."""
    in_host(world, "sysctl", "-w", "net.ipv4.ip_forward=1")
    out, err, _, before_ra, after_ra = hostile_ipv6_guest(
        world, options=["--firewall", "none"], ro=True)
    assert "ra-sent 3" in out, out
    assert after_ra != before_ra
    assert b"default via fe80:" in after_ra[0], after_ra[0].decode()


# ---- 2 and 3. Published ports: only local destinations; host loopback -------

GUEST_PUBLISHED = (
    "httpd -f -p 80 -h /www & /netprobe serve-udp 53 guest-udp & sleep 0.5; "
    f"/netprobe tcp {UP_IP} 8080; "        # the guest's own way out to a published port number
    f"/netprobe tcp {UP_IP} 7000; echo ready; sleep 1000")


@pytest.mark.parametrize("backend", BACKENDS)
def test_published_ports_only_local_and_on_host_loopback(world, backend):
    world.spawn(world.up, [str(world.netprobe), "serve-tcp", "8080", "upstream-8080"])
    time.sleep(0.2)
    proc = world.start(["/bin/sh", "-c", GUEST_PUBLISHED],
                       options=["--firewall", backend, "-p", "8080:80",
                                "-p", "127.0.0.1:8081:80", "-p", "5353:53/udp"])
    try:
        out = wait_for_output(proc, b"ready", timeout=240).decode()
        curl = lambda url: in_host(world, "curl", "-s", "-m", "5", url).stdout
        local_any = curl("http://127.0.0.1:8080/")
        local_only = curl("http://127.0.0.1:8081/")
        local_udp = in_host(world, str(world.netprobe), "udp", "127.0.0.1", "5353").stdout
        from_up = sh("ip", "netns", "exec", world.up, "curl", "-s", "-m", "5",
                     f"http://{HOST_IP}:8080/", check=False).stdout
        from_up_loopback_only = sh("ip", "netns", "exec", world.up, "curl", "-s", "-m", "3",
                                   f"http://{HOST_IP}:8081/", check=False)
        switches = localnet(world)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=120)
    lines = out.splitlines()
    seen = {
        # 2: the guest's own connection to upstream:8080 reaches upstream, not itself
        "guest to upstream:8080": f"upstream-8080 from {HOST_IP}" in lines,
        "control: guest to upstream:7000": f"upstream-tcp from {HOST_IP}" in lines,
        # 3: the host's loopback reaches the guest, for "any" and 127.0.0.1
        "host curl 127.0.0.1:8080": local_any == b"guest-http\n",
        "host curl 127.0.0.1:8081 (-p 127.0.0.1:8081:80)": local_only == b"guest-http\n",
        "host udp 127.0.0.1:5353": local_udp.startswith(b"guest-udp from"),
        "control: upstream curl host:8080": from_up == b"guest-http\n",
        "127.0.0.1:8081 closed to upstream": from_up_loopback_only.stdout == b"",
        "route_localnet off for all/default": switches == b"0\n0\n",
    }
    failed = [k for k, ok in seen.items() if not ok]
    assert not failed, (failed, out, local_any, local_only, local_udp, from_up)


@pytest.mark.parametrize("backend", BACKENDS)
def test_sigkill_then_gc_removes_ipv6_and_loopback_rules(world, backend):
    """What points 1-3 add (IPv6 drops, loopback masquerade, the local-only
    DNAT) is recorded and removed by gc after a SIGKILL: the fixture then
    finds every ruleset, link and switch as it was."""
    proc = world.start(["/bin/sh", "-c", "echo ready; sleep 1000"],
                       options=["--firewall", backend, "-p", "8080:80",
                                "-p", "127.0.0.1:8081:80"])
    wait_for_output(proc, b"ready", timeout=240)
    proc.kill()
    proc.wait()
    v6 = "ip6tables-legacy-save" if backend == "iptables-legacy" else "ip6tables-nft-save"
    v6_rules = (in_host(world, "nft", "list", "table", "ip6", f"ctrj_{runs_id(world)}").stdout
                if backend == "nft" else in_host(world, v6).stdout)
    assert b"drop" in v6_rules.lower(), v6_rules          # left behind by the SIGKILL
    sh("nsenter", f"--net=/var/run/netns/{world.host}", str(BINARY), "gc",
       env=world.runner.env())
    assert b"cj-" not in links_settled(world.host)


def runs_id(w):
    return [p.name for p in w.runner.run_dir.iterdir() if not p.name.startswith(".")][0]


# ---- Every recorded rule is undone, however many ports ------------------------

MANY_PORTS = 64  # CJ_MAX_PORTS: the iptables backends record over 130 rules


def many_ports():
    """CJ_MAX_PORTS published ports, TCP and UDP in turn, all to the guest's 80."""
    opts = []
    for i in range(MANY_PORTS):
        opts += ["-p", f"{21000 + i}:80" + ("/udp" if i % 2 else "")]
    return opts


def ruleset(w, backend):
    save = {"nft": ["nft", "list", "ruleset"], "iptables-nft": ["iptables-nft-save"],
            "iptables-legacy": ["iptables-legacy-save"]}[backend]
    return in_host(w, *save).stdout.decode()


# A host that manages iptables (why auto-detection picks an iptables backend)
# has rules of its own in the chains ours go to: then iptables-nft creates
# no chain for us, and each of our rules must go one by one.
HOST_CHAINS = [("filter", "INPUT"), ("filter", "FORWARD"), ("nat", "PREROUTING"),
               ("nat", "OUTPUT"), ("nat", "POSTROUTING"), ("raw", "PREROUTING")]


def host_iptables(w, backend, op):
    for table, chain in HOST_CHAINS:
        in_host(w, backend, "-w", "-t", table, op, chain, "-s", "198.51.100.7/32", "-j",
                "ACCEPT", "-m", "comment", "--comment", "host-rule")
    if op == "-D" and backend == "iptables-nft":
        in_host(w, "nft", "flush", "ruleset")  # the tables it made, as the world had none


@pytest.mark.parametrize("backend", BACKENDS)
def test_teardown_and_gc_undo_every_rule_of_64_published_ports(world, backend):
    """With the most ports a run may publish, teardown at the end of a run
    and gc after a SIGKILL leave every ruleset, link and switch of the host
    as they were; in between, the last port's rules were there and worked."""
    if backend != "nft":
        host_iptables(world, backend, "-A")
    before = host_state(world)
    r = world.run(["/bin/true"], options=["--firewall", backend, *many_ports()])
    assert r.returncode == 0, r.stderr
    after_run = host_state(world)
    proc = world.start(["/netprobe", "serve-tcp", "80", "guest-many"],
                       options=["--firewall", backend, *many_ports()])
    try:
        wait_for_output(proc, b"serving", timeout=240)
        during = ruleset(world, backend)
        # the highest TCP port forwards (a rule recorded late in the list)
        last_tcp = sh("ip", "netns", "exec", world.up, str(world.netprobe), "tcp", HOST_IP,
                      str(21000 + MANY_PORTS - 2), check=False).stdout
    finally:
        proc.kill()
        proc.wait()
    sh("nsenter", f"--net=/var/run/netns/{world.host}", str(BINARY), "gc",
       env=world.runner.env())
    after_gc = host_state(world)
    if backend != "nft":
        host_iptables(world, backend, "-D")
    problems = {
        "left by teardown": added(before, after_run),
        "left by gc after SIGKILL": added(after_run, after_gc),
        # the highest port's rules were there and worked (unless a
        # previous run's leftovers took its traffic first)
        "last TCP port": [] if last_tcp.startswith(b"guest-many from") else [last_tcp],
        "last UDP port's DNAT": [] if str(21000 + MANY_PORTS - 1) in during else [during],
    }
    problems = {k: v for k, v in problems.items() if v}
    assert not problems, problems
    assert after_run == before == after_gc


def added(before, after):
    """The lines of host_state that after has and before has not."""
    def lines(x):
        if isinstance(x, tuple):
            return [l for part in x for l in lines(part)]
        return x if isinstance(x, list) else x.splitlines()
    old = set(lines(before))
    return [l.decode() for l in lines(after) if l not in old]


def test_rules_the_host_adds_during_a_run_survive_its_teardown(world):
    """On a host without them, iptables-nft creates the chains a run's rules
    go to, and teardown removes those chains again: only if they are empty,
    as nft deletes a base chain together with whatever rules it holds. Rules
    the host's own iptables put there while the VM ran stay."""
    proc = world.start(["/bin/sh", "-c", "echo ready; sleep 1000"],
                       options=["--firewall", "iptables-nft", "-p", "8080:80"])
    try:
        wait_for_output(proc, b"ready", timeout=240)
        host_iptables(world, "iptables-nft", "-A")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=120)
    kept = ruleset(world, "iptables-nft")
    host_iptables(world, "iptables-nft", "-D")
    assert kept.count("host-rule") == len(HOST_CHAINS), kept
    assert "ctr-jailer" not in kept, kept


# ---- 4. Host ports already in use ------------------------------------------

LISTENER = """
import socket, sys, time
addr, port, udp, v6only = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "udp", sys.argv[4]
s = socket.socket(socket.AF_INET6 if ":" in addr else socket.AF_INET,
                  socket.SOCK_DGRAM if udp else socket.SOCK_STREAM)
if v6only != "-":
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, int(v6only))
s.bind((addr, port))
if not udp:
    s.listen()
print("listening", flush=True)
time.sleep(1000)
"""


def listener(w, addr, port, proto="tcp", v6only="-"):
    p = w.spawn(w.host, ["/usr/bin/python3", "-c", LISTENER, addr, str(port), proto, v6only])
    assert p.stdout.readline() == b"listening\n"
    return p.pid


def test_host_port_in_use_is_refused(world):
    cases = [  # listener, then the -p that must be refused
        (("0.0.0.0", 8000, "tcp"), "8000:80"),
        ((HOST_IP, 8001, "udp"), "8001:53/udp"),
        ((HOST_IP, 8001, "udp"), f"{HOST_IP}:8001:53/udp"),
        (("::", 8002, "tcp", "0"), "8002:80"),                  # dual-stack takes IPv4 too
        (("127.0.0.1", 8003, "tcp"), "127.0.0.1:8003:80"),
        (("0.0.0.0", 8000, "tcp"), f"{HOST_IP}:8000:80"),       # "any" covers the given IP
    ]
    pids = {}
    for (spec, publish) in cases:
        key = spec[:3]
        if key not in pids:
            pids[key] = listener(world, *spec)
        r = world.run(["/bin/true"], options=["-p", publish])
        err = r.stderr.decode()
        port = str(spec[1])
        assert r.returncode == 125, (publish, r.returncode, err)
        msg = [l for l in err.splitlines() if port in l]
        assert len(msg) == 1, err                              # one line
        assert f"{port}/{spec[2]}" in msg[0], err
        assert "python3" in msg[0] and str(pids[key]) in msg[0], err   # names the listener


def test_host_port_in_use_negative_controls(world):
    """Listeners that publishing does not shadow: another address, an
    IPv6-only socket, the other protocol."""
    listener(world, "127.0.0.1", 8004)
    listener(world, "::", 8005, "tcp", "1")
    listener(world, "0.0.0.0", 8006, "udp")
    r = world.run(["/bin/sh", "-c", "echo started"],
                  options=["-p", f"{HOST_IP}:8004:80", "-p", "8005:80", "-p", "8006:80/tcp"])
    assert r.returncode == 0, r.stderr
    assert b"started" in r.stdout
