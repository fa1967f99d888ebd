# SPDX-License-Identifier: Apache-2.0
"""A guest forging replies into the host's loopback conversations (the
class of kube-proxy's CVE-2020-8558).

Published ports answer on the host's 127.0.0.1 through route_localnet on
the VM's TAP, which lets packets with 127.0.0.0/8 addresses in from the
guest too. A host socket on 127.0.0.1:5000 that has sent to 127.0.0.53:6000
(systemd-resolved's stub address) has a conntrack entry whose reply a guest
can forge, and the input chain accepts what conntrack calls established:
the forged reply reached the socket. Every firewall backend must drop
127.0.0.0/8 from the TAP before conntrack sees it.

The hostile guest is a real QEMU guest (spoofprobe.c, frames through an
AF_PACKET socket) and, for Firecracker's veth host end, the stand-in
Firecracker of test_firecracker_contract.py writing the same frames on its
TAP. Controls in each run: the same frames with the guest's own addresses
reach a host socket (so the frames do get through), route_localnet is on
where they arrive, and (QEMU) the published ports still answer on the
host's loopback.

Everything runs in the namespace world of test_network.py; the root
namespace is never touched."""
import re
import shutil
import signal

import pytest

from conftest import REPO, wait_for_output
from test_firecracker_contract import fc  # noqa: F401 (fixture)
from test_network import UP_IP, World, netprobe, sh  # noqa: F401 (netprobe: fixture)
from test_sec_net_ports import BACKENDS, host_state, in_host, settle_ipv6
from test_sec_netns import GUEST_PROBE, fc_in_world, kinds, ip_json, wait_for_record

HOST_TAP_IP, GUEST_IP = GUEST_PROBE["host_ip"], GUEST_PROBE["guest_ip"]  # TAP_IP 10.77.0.1/30

# In the host namespace: a loopback conversation 127.0.0.1:5000 ->
# 127.0.0.53:6000 kept alive, and a flow the host starts from the TAP's
# address to the guest's port 6000. Prints "loopback TEXT FROM" or "tap TEXT
# FROM" for each datagram that comes back, and stops 3 s after the first
# "tap" one (or after LIMIT seconds).
LOOPBACK_PEER = r"""
import select, socket, sys, time
host_ip, guest_ip, limit = sys.argv[1], sys.argv[2], float(sys.argv[3])
IP_FREEBIND = 15   # the TAP's address may not be there yet
a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
a.bind(("127.0.0.1", 5000))
b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
b.bind(("127.0.0.53", 6000))
d = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
d.setsockopt(socket.SOL_IP, IP_FREEBIND, 1)
d.bind((host_ip, 5001))
print("listening", flush=True)
names = {a: "loopback", d: "tap"}
deadline, until = time.monotonic() + limit, None
while time.monotonic() < min(deadline, until or deadline):
    a.sendto(b"query", ("127.0.0.53", 6000))
    try:
        d.sendto(b"hello", (guest_ip, 6000))
    except OSError:
        pass
    for s in select.select([a, b, d], [], [], 0.2)[0]:
        data, peer = s.recvfrom(100)
        if s is not b:
            print(names[s], data.decode(errors="replace"), peer[0], flush=True)
            if s is d and until is None:
                until = time.monotonic() + 3
print("done", flush=True)
"""


@pytest.fixture(scope="session")
def spoofprobe(tmp_path_factory):
    out = tmp_path_factory.mktemp("spoofprobe") / "spoofprobe"
    sh("musl-gcc", "-static", "-O2", "-o", str(out),
       str(REPO / "tests/integration/spoofprobe.c"))
    return out


@pytest.fixture(scope="session")
def spoof_rootfs(busybox_rootfs, netprobe, spoofprobe, tmp_path_factory):
    root = tmp_path_factory.mktemp("rootfs-spoof") / "root"
    shutil.copytree(busybox_rootfs, root, symlinks=True)
    shutil.copy(netprobe, root / "netprobe")
    shutil.copy(spoofprobe, root / "spoofprobe")
    return root


@pytest.fixture
def world(runner, netprobe, spoof_rootfs):
    w = World(runner, netprobe, spoof_rootfs)
    settle_ipv6(w)
    before = host_state(w)
    yield w
    after = host_state(w)
    w.close()
    assert after == before, "host namespace rules, links or IPv6 state changed by the run"


def loopback_peer(w, limit):
    p = w.spawn(w.host, ["/usr/bin/python3", "-c", LOOPBACK_PEER, HOST_TAP_IP, GUEST_IP,
                         str(limit)])
    assert p.stdout.readline() == b"listening\n"
    return p


def route_localnet(w, dev):
    return in_host(w, "cat", f"/proc/sys/net/ipv4/conf/{dev}/route_localnet").stdout.strip()


def judge(heard, switch, extra=()):
    lines = heard.decode().splitlines()
    seen = {
        "no forged reply reached the host's loopback socket":
            not any(l.startswith("loopback ") for l in lines),
        "control: the same frames with the guest's own addresses reach the host":
            f"tap frame-from-guest {GUEST_IP}" in lines,
        "control: route_localnet is on where the frames arrive": switch == b"1",
        **dict(extra),
    }
    failed = [k for k, ok in seen.items() if not ok]
    assert not failed, (failed, lines)


GUEST = ("/netprobe serve-tcp 80 guest-tcp & /netprobe serve-udp 53 guest-udp & "
         f"/netprobe tcp {UP_IP} 7000; echo ready; /spoofprobe 60; sleep 1000")


@pytest.mark.parametrize("backend", BACKENDS)
def test_guest_cannot_forge_replies_into_host_loopback_conversations(world, backend):
    proc = world.start(["/bin/sh", "-c", GUEST],
                       options=["--firewall", backend, "-p", "8080:80", "-p", "5353:53/udp"],
                       env={"TAP_IP": f"{HOST_TAP_IP}/30"})
    try:
        wait_for_output(proc, b"ready", timeout=240)
        tap = re.search(rb"\d+: (cj-[0-9a-f]+)",
                        sh("ip", "-n", world.host, "-o", "link").stdout).group(1).decode()
        switch = route_localnet(world, tap)
        heard = loopback_peer(world, 50).stdout.read()
        tcp = in_host(world, str(world.netprobe), "tcp", "127.0.0.1", "8080").stdout
        udp = in_host(world, str(world.netprobe), "udp", "127.0.0.1", "5353").stdout
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=120)
    judge(heard, switch, {
        "control: published TCP port on the host's 127.0.0.1": tcp.startswith(b"guest-tcp from"),
        "control: published UDP port on the host's 127.0.0.1": udp.startswith(b"guest-udp from"),
    }.items())


@pytest.mark.parametrize("backend", BACKENDS)
def test_firecracker_veth_host_end_drops_forged_loopback_replies(fc, world, backend):
    """Firecracker's TAP lives in a namespace of the VM's own; the frames
    arrive in the host's namespace on the veth end that carries the TAP's
    name."""
    peer = loopback_peer(world, 90)
    fc.configure(on_start="wait", guest_probe={**GUEST_PROBE, "forge_seconds": 8})
    proc = fc_in_world(fc, world, options=["--firewall", backend, "-p", "8080:80"])
    try:
        tap = wait_for_record(fc, proc, "tap")["name"]
        host_kind = kinds(ip_json("-n", world.host, "link", "show")).get(tap)
        switch = route_localnet(world, tap)
        heard = peer.stdout.read()
        forged = wait_for_record(fc, proc, "guest_probe").get("forged")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
    judge(heard, switch, {
        "the frames arrive on the veth host end": host_kind == "veth",
        "the stand-in forged frames": bool(forged),
    }.items())
