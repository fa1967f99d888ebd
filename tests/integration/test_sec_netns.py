# SPDX-License-Identifier: Apache-2.0
"""Issue 11, point 8: the jailed VMM has a network namespace of its own.

An attacker who escapes from the guest into QEMU must find no network:
no loopback-only service of the host, no abstract unix socket, no list of
the other VMs' TAPs. The jail clones QEMU into a new, empty network
namespace (the TAP is handed over as an fd, so QEMU needs none), and the
VM's own networking keeps working through that fd.

Everything runs in the namespaces of test_network's "world": the runtime
in a "host" namespace with an uplink to an "upstream" namespace. The root
namespace is never touched.
"""
import os
import signal
import uuid

from conftest import runs, wait_for_output
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
    (run,) = runs(run_dir)
    pid, _start = (run / name).read_text().split()
    return int(pid)


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
