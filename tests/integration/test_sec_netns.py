# SPDX-License-Identifier: Apache-2.0
"""Issue 11, point 8: the jailed VMM has a network namespace of its own.

An attacker who escapes from the guest into QEMU must find no network:
no loopback-only service of the host, no abstract unix socket, no list of
the other VMs' TAPs. The jail clones QEMU into a new, empty network
namespace (the TAP is handed over as an fd, so QEMU needs none), and the
VM's own networking keeps working through that fd.

Firecracker opens its TAP by name, so its jailer joins (--netns) a
namespace of the VM's own that holds only that TAP and the veth end leading
to the host, joined by tc redirects. Tested by contract (the stand-ins of
test_firecracker_contract.py), with real frames: the stand-in Firecracker
plays a guest on the TAP (ARP, then UDP out through NAT and back).

Everything runs in the namespaces of test_network's "world": the runtime
in a "host" namespace with an uplink to an "upstream" namespace. The root
namespace is never touched.
"""
import json
import os
import signal
import subprocess
import time
import uuid

from conftest import BINARY, runs, wait_for_output
from test_firecracker_contract import fc  # noqa: F401
from test_network import HOST_IP, UP_IP, net_rootfs, netprobe, sh, world  # noqa: F401

# A loopback-only TCP service and an abstract unix socket in the runtime's
# namespace: both answer "secret" to whoever connects.
SERVICE = r"""
import socket, sys, threading
def serve(s):
    while True:
        c, _ = s.accept()
        c.sendall(b"secret")
        c.close()
t = socket.socket()
t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
t.bind(("127.0.0.1", int(sys.argv[1])))
t.listen(8)
u = socket.socket(socket.AF_UNIX)
u.bind("\0" + sys.argv[2])
u.listen(8)
threading.Thread(target=serve, args=(u,), daemon=True).start()
print("listening", flush=True)
serve(t)
"""

# What a process in a given namespace reaches of both.
PROBE = r"""
import socket, sys
for name, family, addr in (("tcp", socket.AF_INET, ("127.0.0.1", int(sys.argv[1]))),
                           ("unix", socket.AF_UNIX, "\0" + sys.argv[2])):
    s = socket.socket(family)
    s.settimeout(3)
    try:
        s.connect(addr)
        print(name, s.recv(64).decode())
    except OSError as e:
        print(name, "refused", e.errno)
"""


def probe(ns_path, port, abstract):
    r = sh("nsenter", f"--net={ns_path}", "/usr/bin/python3", "-c", PROBE, str(port), abstract)
    return dict(line.split(" ", 1) for line in r.stdout.decode().splitlines())


def links(ns_path):
    out = sh("nsenter", f"--net={ns_path}", "ip", "-o", "link").stdout.decode()
    return sorted(line.split(":")[1].strip().split("@")[0] for line in out.splitlines())


def record(run_dir, name):
    """The pid of the run's "owner" or "vmm", from its record.json."""
    (run,) = runs(run_dir)
    return int(json.loads((run / "record.json").read_text())[name]["pid"])


def test_jailed_qemu_has_an_empty_network_namespace(world):
    tag = uuid.uuid4().hex[:8]
    port, abstract = 17000 + int(tag[:3], 16) % 1000, f"ctrj-netns-{tag}"
    svc = world.spawn(world.host, ["/usr/bin/python3", "-c", SERVICE, str(port), abstract])
    assert svc.stdout.readline() == b"listening\n"
    vm = world.start(["/bin/sh", "-c",
                      f"/netprobe tcp {UP_IP} 7000; /netprobe serve-tcp 80 guest-netns"],
                     options=["-p", "8080:80"])
    try:
        out = wait_for_output(vm, b"serving")
        qemu = record(world.runner.run_dir, "vmm")
        runtime = record(world.runner.run_dir, "owner")
        assert b"qemu-system" in open(f"/proc/{qemu}/cmdline", "rb").read()
        qemu_ns, runtime_ns = f"/proc/{qemu}/ns/net", f"/proc/{runtime}/ns/net"
        ns_ino = {p: os.stat(p).st_ino for p in (qemu_ns, runtime_ns,
                                                 f"/var/run/netns/{world.host}")}
        qemu_links, runtime_links = links(qemu_ns), links(runtime_ns)
        from_qemu = probe(qemu_ns, port, abstract)
        from_runtime = probe(runtime_ns, port, abstract)
        published = sh("ip", "netns", "exec", world.up, str(world.netprobe), "tcp", HOST_IP,
                       "8080", check=False).stdout
    finally:
        vm.send_signal(signal.SIGTERM)
        vm.communicate(timeout=120)
    # The runtime runs in the world's host namespace; QEMU in another one.
    assert ns_ino[runtime_ns] == ns_ino[f"/var/run/netns/{world.host}"]
    assert ns_ino[qemu_ns] != ns_ino[runtime_ns], "QEMU shares the runtime's network namespace"
    # Nothing in it but lo: no TAP (its own or another VM's), no uplink.
    assert qemu_links == ["lo"], qemu_links
    # Control: the runtime's namespace does hold the uplink and the TAP.
    assert "uplink" in runtime_links and any(l.startswith("cj-") for l in runtime_links)
    # The loopback-only service and the abstract socket: reachable from the
    # runtime's namespace (control), not from QEMU's.
    assert from_runtime == {"tcp": "secret", "unix": "secret"}, from_runtime
    assert from_qemu["tcp"].startswith("refused"), from_qemu
    assert from_qemu["unix"].startswith("refused"), from_qemu
    # The VM's own networking still works through the TAP fd: out through
    # NAT, and in through a published port.
    assert f"upstream-tcp from {HOST_IP}".encode() in out, out
    assert published.startswith(b"guest-netns from"), published


# ---- Firecracker (contract: the stand-ins of test_firecracker_contract) -----

GUEST_PROBE = {"guest_ip": "10.77.0.2", "host_ip": "10.77.0.1", "udp_to": [UP_IP, 7001]}


def fc_in_world(fc, world, options=()):
    """ctr-jailer --vmm firecracker in the world's host namespace (its own
    mount namespace, as test_network runs it), with a TAP."""
    argv = ["nsenter", f"--net=/var/run/netns/{world.host}", "unshare", "-m", "--propagation",
            "private", *fc.argv(["--network", "tap", *options])]
    return subprocess.Popen(argv, env=fc.env({"TAP_IP": "10.77.0.1/30"}),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def wait_for_record(fc, proc, event, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [r for r in fc.records() if r["event"] == event]
        if found:
            return found[0]
        if proc.poll() is not None:
            raise AssertionError(f"ctr-jailer exited {proc.returncode} before the stand-in "
                                 f"recorded {event}: {proc.stderr.read()!r}")
        time.sleep(0.05)
    raise AssertionError(f"no {event} record; records: {fc.records()}")


def ip_json(*args):
    return json.loads(sh("ip", "-j", "-d", *args).stdout or b"[]")


def kinds(link_list):
    return {l["ifname"]: l.get("linkinfo", {}).get("info_kind", l.get("link_type"))
            for l in link_list}


def test_jailed_firecracker_gets_a_namespace_holding_only_its_tap(fc, world):
    again = fc.work / "probe-again"
    fc.configure(on_start="wait", guest_probe={**GUEST_PROBE, "again_when": str(again)})
    proc = fc_in_world(fc, world)
    try:
        tap = wait_for_record(fc, proc, "tap")
        probe_seen = wait_for_record(fc, proc, "guest_probe")
        vmm = record(world.runner.run_dir, "vmm")
        fc_ns = f"/proc/{vmm}/ns/net"
        inside = kinds(json.loads(sh("nsenter", f"--net={fc_ns}", "ip", "-j", "-d", "link",
                                     "show").stdout))
        host = kinds(ip_json("-n", world.host, "link", "show"))
        host_end = ip_json("-n", world.host, "addr", "show", "dev", tap["name"])
        fc_ns_ino = os.stat(fc_ns).st_ino
        world_ino = os.stat(f"/var/run/netns/{world.host}").st_ino
        # Negative control: without the TAP's redirect, nothing gets through.
        sh("nsenter", f"--net={fc_ns}", "tc", "qdisc", "del", "dev", tap["name"], "ingress")
        again.touch()
        deadline = time.monotonic() + 30
        while len([r for r in fc.records() if r["event"] == "guest_probe"]) < 2:
            assert time.monotonic() < deadline, fc.records()
            time.sleep(0.1)
        probe_cut = [r for r in fc.records() if r["event"] == "guest_probe"][1]
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, err
    j = fc.jailer()
    assert not j["problems"], j["problems"]
    # The jailer was given a network namespace that is not the runtime's,
    # and Firecracker ran in it.
    assert j["netns"]["is_netns"] and not j["netns"]["is_runtime_ns"], j["netns"]
    assert fc_ns_ino != world_ino
    assert tap["netns"] == fc_ns_ino
    # In it: lo, the TAP named in PUT /network-interfaces (Firecracker
    # attached to it there, as the jail user), and the veth end that leads
    # to the host; no uplink, no other TAP.
    assert inside == {"lo": "loopback", tap["name"]: "tun", "cj-host": "veth"}, inside
    assert {l["name"]: l["kind"] for l in tap["links"]} == inside
    # The runtime's namespace: no TAP; the host end of the veth carries the
    # TAP's name (the firewall's rules match it) and the host address.
    assert host[tap["name"]] == "veth", host
    assert "tun" not in host.values(), host
    addrs = [a["local"] for a in host_end[0]["addr_info"] if a["family"] == "inet"]
    assert addrs == ["10.77.0.1"], host_end
    # Real frames through the tc redirects: the host answered the guest's
    # ARP with the host end's MAC, and a UDP datagram went out through NAT
    # to the upstream server and its answer came back to the TAP.
    assert probe_seen["host_mac"] == host_end[0]["address"], (probe_seen, host_end)
    assert probe_seen["udp_reply"] == f"upstream-udp from {HOST_IP}\n", probe_seen
    assert probe_cut["host_mac"] is None, probe_cut
    # Torn down: the host end is gone (the world fixture compares all
    # links and rules), and so is the namespace's file with the run dir.
    assert tap["name"] not in kinds(ip_json("-n", world.host, "link", "show"))


def test_firecracker_namespace_removed_by_gc_after_sigkill(fc, world):
    fc.configure(on_start="wait")
    proc = fc_in_world(fc, world)
    tap = wait_for_record(fc, proc, "tap")
    proc.kill()
    proc.wait(timeout=30)
    proc.stdout.close()
    proc.stderr.close()
    assert tap["name"] in kinds(ip_json("-n", world.host, "link", "show"))  # left behind
    r = subprocess.run(["nsenter", f"--net=/var/run/netns/{world.host}", str(BINARY), "gc"],
                       env=fc.env(), capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert tap["name"] not in kinds(ip_json("-n", world.host, "link", "show"))
    assert not runs(world.runner.run_dir)
