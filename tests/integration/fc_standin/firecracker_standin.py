# SPDX-License-Identifier: Apache-2.0
"""A stand-in for the `firecracker` binary, for contract tests only.

Firecracker cannot be installed on the machines this project is tested on,
so this program plays its part at the one interface ctr-jailer uses: the
REST API on the --api-sock unix socket. It

- answers as Firecracker does: 204, 200 + JSON for GET /version, 400 with
  {"fault_message": ...} for bad input;
- validates every request body against Firecracker's published OpenAPI
  document (../shared/firecracker/firecracker.yaml), with unknown fields
  refused the way Firecracker's serde(deny_unknown_fields) refuses them;
- enforces the call order (configuration before InstanceStart, nothing but
  actions after it) and opens the files it is given the way Firecracker
  does (drives read-write unless read-only, kernel and initrd read-only,
  logger and metrics for writing), so permissions and paths are real;
- records every call (JSON lines) for the test to read;
- attaches to the TAP named in PUT /network-interfaces the way Firecracker
  does (/dev/net/tun, TUNSETIFF by name, in its own network namespace, as
  its own user), and records the links of that namespace;
- with "guest_probe" in its configuration, plays a guest on that TAP after
  InstanceStart: it asks the host's address with ARP and sends a UDP
  datagram through the host to an upstream server, and records what came
  back (real frames through whatever ctr-jailer built between TAP and host);
  with "forge_seconds" in it, then plays a hostile guest that forges
  replies to the host's loopback conversations (forge_loopback_replies);
- ends the "VM" like a guest that rebooted: it writes a status record into
  the control-disk drive (include/ctrj/protocol.h) and exits 0;
- with a vsock device (PUT /vsock), listens on its uds_path after
  InstanceStart and answers the host's "CONNECT <port>\n" as "vsock" in its
  configuration says: "agent" ("OK <port>\n", then a fake guest agent that
  greets (HELLO) and answers each START with its argv on stdout and a set
  exit code), "garbage", "close" (no listener in the guest) or "silent";
  "closes": N closes the first N connections (a guest still booting);
- boot snapshots (see Firecracker.snapshot_*): a guest booted with
  ctrj.snap=1 says the init's snapshot point on the console (its stdout)
  instead of running; PATCH /vm Paused, PUT /snapshot/create write a state
  file (what was configured, as JSON) and a memory file into the jail;
  PUT /snapshot/load is accepted only by a fresh process (logger and
  metrics at most), from files inside its jail, reopens the drives, TAP
  and vsock the state names (network_overrides first), and refuses a state
  or memory file that is not one it wrote; PATCH /drives re-points a drive
  of a started or loaded VM; PATCH /vm Resumed of a loaded VM runs the
  restored guest: it reads the host's "go" line on the console's input
  (its stdin), records it, and then behaves as after InstanceStart. Every
  call out of that order is refused and recorded as a violation;
- when told to ("hijack"), plays a compromised Firecracker after
  InstanceStart: it replaces its API socket by a symlink to another socket,
  or by a socket a child process of its own serves (see Firecracker.hijack).

Inside the stand-in jailer (jailer_standin.py) it runs as the jail's user
with the jail's root as its working directory: absolute paths it is given
are resolved against that root, as a chroot would.

A wrapper generated per test holds CONFIG and calls main().
"""
import fcntl
import json
import os
import re
import select
import socket
import socketserver
import struct
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler

import jsonschema
import yaml

# include/ctrj/protocol.h
CTL_CONFIG_OFF = 4096
CTL_CONFIG_MAX = 1024 * 1024
CTL_STATUS_OFF = CTL_CONFIG_OFF + CTL_CONFIG_MAX
STATE_EXITED, STATE_SIGNALED = 1, 2

# linux/if_tun.h
TUNSETIFF, TUNSETVNETHDRSZ = 0x400454CA, 0x400454D8
IFF_TAP, IFF_NO_PI, IFF_VNET_HDR = 0x0002, 0x1000, 0x4000
VNET_HDR_LEN = 12  # what Firecracker sets (virtio_net_hdr_v1)

# include/ctrj/agent.h
AGENT_HELLO, AGENT_START, AGENT_STDOUT, AGENT_STDERR, AGENT_EXIT = 1, 16, 32, 33, 34
AGENT_CREDIT, AGENT_MAIN_SESSION = 2, 0xFFFFFFFF
AGENT_REC_ARG, AGENT_EXITED, AGENT_VERSION, AGENT_VSOCK_PORT = 1, 1, 1, 1024

PRE_BOOT = ("/logger", "/metrics", "/machine-config", "/boot-source", "/drives/",
            "/network-interfaces/", "/entropy", "/vsock")
# include/ctrj/protocol.h; what the stand-in writes into its snapshots
SNAPSHOT_POINT = b"ctrj-snapshot-point"
STATE_MAGIC, MEM_MAGIC = "ctrj-standin-snapshot-1", b"CTRJ-STANDIN-MEM"


def status_record(state, code=0, signal=0, msg=b""):
    """ctrj_status_encode, in Python."""
    buf = bytearray(4096)
    buf[0:8] = b"CTRJSTA1"
    struct.pack_into("<IIII", buf, 8, 1, state, code, signal)
    struct.pack_into("<QQQQ", buf, 24, 1_000_000, 0, 2_000_000, 3_000_000)
    struct.pack_into("<I", buf, 56, len(msg))
    buf[60:60 + len(msg)] = msg
    return bytes(buf)


def strict(schema):
    """Swagger objects allow unknown fields; Firecracker does not."""
    if isinstance(schema, dict):
        out = {k: strict(v) for k, v in schema.items()}
        if out.get("type") == "object" and "properties" in out \
                and "additionalProperties" not in out:
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [strict(v) for v in schema]
    return schema


def load_api(path):
    """{(method, path regex): schema or None} from the Swagger 2.0 document;
    #/definitions/... refs resolve inside the same document."""
    with open(path) as f:
        doc = yaml.safe_load(f)
    definitions = strict(doc["definitions"])
    ops = {}
    for template, methods in doc["paths"].items():
        regex = "^" + re.sub(r"\{[^}]+\}", r"([^/]+)", template) + "$"
        for method, op in methods.items():
            schema = None
            for param in op.get("parameters", []):
                if param.get("in") == "body":
                    schema = {"definitions": definitions, **strict(param["schema"])}
            ops[(method.upper(), regex)] = schema
    return ops


class Firecracker:
    def __init__(self, config, argv):
        self.config = config
        self.argv = argv
        self.jailed = os.environ.get("STANDIN_JAILED") == "1"
        self.ops = load_api(config["schema"])
        self.started = False
        self.boot_source = None
        self.drives = {}
        self.files = []  # keep opened files open, as Firecracker does
        self.tap = None  # (fd, guest MAC) once attached
        self.vsock = None  # the PUT /vsock body
        self.vsock_conns = 0
        self.iface = None  # the PUT /network-interfaces body
        self.machine = None
        self.configured = set()  # pre-boot paths configured (a load needs none but logger, metrics)
        self.paused = False
        self.loaded = False  # from a snapshot

    # -- recording ------------------------------------------------------------
    def record(self, **entry):
        entry["t"] = time.time()
        with open(self.config["record"], "a") as f:
            f.write(json.dumps(entry) + "\n")

    # -- paths: inside the jail, the jail root is "/" --------------------------
    def resolve(self, path):
        if not self.jailed:
            return path
        parts = [p for p in path.split("/") if p not in ("", ".")]
        if ".." in parts:
            raise PermissionError(f"{path}: '..' leaves the jail")
        return os.path.join(".", *parts) if parts else "."

    def describe(self, path):
        st = os.stat(self.resolve(path))
        return {"path": path, "ino": st.st_ino, "dev": st.st_dev, "uid": st.st_uid,
                "gid": st.st_gid, "mode": st.st_mode, "nlink": st.st_nlink,
                "abspath": os.path.abspath(self.resolve(path))}

    def open_file(self, path, write):
        fd = os.open(self.resolve(path), (os.O_RDWR if write else os.O_RDONLY) | os.O_NONBLOCK)
        self.files.append(fd)
        return fd

    # -- the API ----------------------------------------------------------------
    def handle(self, method, path, body):
        """Returns (status, payload or None, after) where after() runs once
        the answer is sent."""
        schema = None
        for (m, regex), s in self.ops.items():
            if m == method and re.match(regex, path):
                schema = s
                break
        else:
            return 400, {"fault_message": f"Invalid request method and/or path: {method} {path}"}, None
        if method == "GET":
            if path == "/version":
                return 200, {"firecracker_version": self.config.get("version", "1.16.1")}, None
            return 400, {"fault_message": f"the stand-in does not serve GET {path}"}, None
        if schema is not None:
            try:
                jsonschema.Draft4Validator(schema).validate(body)
            except jsonschema.ValidationError as e:
                self.record(event="violation", method=method, path=path,
                            error=f"schema: {e.message}")
                return 400, {"fault_message": f"An error occurred when deserializing the json body of a request: {e.message}"}, None
        if self.started and method == "PUT" and path.startswith(PRE_BOOT):
            self.record(event="violation", method=method, path=path,
                        error="configuration after InstanceStart")
            return 400, {"fault_message": "The requested operation is not supported after starting the microVM."}, None
        fail = self.config.get("fail")
        if fail and fail["path"] == path:
            return 400, {"fault_message": fail["fault_message"]}, None
        try:
            if method == "PATCH" or path.startswith("/snapshot/"):
                return self.snapshot_call(method, path, body)
            return self.apply(path, body)
        except OSError as e:
            return 400, {"fault_message": f"{path}: {e.strerror}: {e.filename}"}, None

    def apply(self, path, body):
        files = {}
        if path.startswith(PRE_BOOT):
            self.configured.add(path)
        if path == "/logger":
            fd = self.open_file(body["log_path"], True)
            files["log_path"] = self.describe(body["log_path"])
            for line in self.config.get("log_lines", []):
                os.write(fd, (line + "\n").encode())
        elif path == "/metrics":
            self.open_file(body["metrics_path"], True)
            files["metrics_path"] = self.describe(body["metrics_path"])
        elif path == "/boot-source":
            self.open_file(body["kernel_image_path"], False)
            files["kernel_image_path"] = self.describe(body["kernel_image_path"])
            if "initrd_path" in body:
                self.open_file(body["initrd_path"], False)
                files["initrd_path"] = self.describe(body["initrd_path"])
            self.boot_source = body
        elif path.startswith("/drives/"):
            if path.split("/")[-1] != body["drive_id"]:
                return 400, {"fault_message": "The id from the path does not match the id from the body!"}, None
            self.open_file(body["path_on_host"], not body.get("is_read_only", False))
            files["path_on_host"] = self.describe(body["path_on_host"])
            self.drives[body["drive_id"]] = body
        elif path.startswith("/network-interfaces/"):
            if path.split("/")[-1] != body["iface_id"]:
                return 400, {"fault_message": "The id from the path does not match the id from the body!"}, None
            self.attach_tap(body["host_dev_name"], body.get("guest_mac"))
            self.iface = body
        elif path == "/machine-config":
            self.machine = body
        elif path == "/vsock":
            self.vsock = body
        elif path == "/actions":
            return self.action(body["action_type"])
        self.record(event="files", path=path, files=files)
        return 204, None, None

    # -- the TAP -------------------------------------------------------------------
    def attach_tap(self, name, mac):
        """As Firecracker's Tap::open_named: fails unless a TAP of that name
        exists in this process's network namespace and this user may attach."""
        fd = os.open(self.resolve("/dev/net/tun"), os.O_RDWR | os.O_CLOEXEC)
        self.files.append(fd)
        ifr = struct.pack("16sH22x", name.encode(), IFF_TAP | IFF_NO_PI | IFF_VNET_HDR)
        fcntl.ioctl(fd, TUNSETIFF, ifr)
        fcntl.ioctl(fd, TUNSETVNETHDRSZ, struct.pack("i", VNET_HDR_LEN))
        self.tap = (fd, mac)
        ip = next(p for p in ("/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip")
                  if os.path.exists(p))
        out = subprocess.run([ip, "-j", "-d", "link", "show"], capture_output=True).stdout
        links = [{"name": l["ifname"],
                  "kind": l.get("linkinfo", {}).get("info_kind", l.get("link_type"))}
                 for l in json.loads(out or b"[]")]
        self.record(event="tap", name=name, links=links,
                    netns=os.stat("/proc/self/ns/net").st_ino)

    def guest_probe(self, spec):
        """A guest's first packets, on the TAP: ARP for the gateway, then one
        UDP datagram to spec["udp_to"] through it; answers the host's ARP
        requests for the guest's address meanwhile."""
        fd, mac_text = self.tap
        mac = bytes.fromhex(mac_text.replace(":", ""))
        gip, hip = socket.inet_aton(spec["guest_ip"]), socket.inet_aton(spec["host_ip"])
        dst, dport = socket.inet_aton(spec["udp_to"][0]), spec["udp_to"][1]

        def arp(op, sha, spa, tha, tpa):
            return struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, op, sha, spa, tha, tpa)

        def send(frame):
            os.write(fd, bytes(VNET_HDR_LEN) + frame)

        def receive(want, timeout=spec.get("timeout", 10)):
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if not select.select([fd], [], [], 0.2)[0]:
                    continue
                f = os.read(fd, 65536)[VNET_HDR_LEN:]
                if f[12:14] == b"\x08\x06" and f[20:22] == b"\x00\x01" and f[38:42] == gip:
                    send(f[6:12] + mac + b"\x08\x06" + arp(2, mac, gip, f[22:28], f[28:32]))
                got = want(f)
                if got is not None:
                    return got
            return None

        result = {}
        host_mac, deadline = None, time.monotonic() + spec.get("timeout", 10)
        while host_mac is None and time.monotonic() < deadline:
            # asked again each second, as a guest's ARP does (a loaded host
            # may not have the path up for the first request)
            send(b"\xff" * 6 + mac + b"\x08\x06" + arp(1, mac, gip, bytes(6), hip))
            host_mac = receive(lambda f: f[22:28] if f[12:14] == b"\x08\x06" and
                               f[20:22] == b"\x00\x02" and f[28:32] == hip else None,
                               timeout=1)
        result["host_mac"] = host_mac.hex(":") if host_mac else None
        if host_mac:
            payload = b"probe"
            udp = struct.pack("!HHHH", 40000, dport, 8 + len(payload), 0) + payload
            ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 1, 0x4000, 64, 17, 0,
                             gip, dst)
            csum = sum(struct.unpack("!10H", ip))
            csum = (csum & 0xffff) + (csum >> 16)
            csum = ~((csum & 0xffff) + (csum >> 16)) & 0xffff
            ip = ip[:10] + struct.pack("!H", csum) + ip[12:]
            send(host_mac + mac + b"\x08\x00" + ip + udp)

            def udp_reply(f):
                if f[12:14] != b"\x08\x00" or f[23] != 17 or f[26:30] != dst or f[30:34] != gip:
                    return None
                return f[14 + (f[14] & 0xf) * 4 + 8:].decode(errors="replace")
            result["udp_reply"] = receive(udp_reply)
            if spec.get("forge_seconds"):
                result["forged"] = self.forge_loopback_replies(spec, host_mac, receive)
        self.record(event="guest_probe", **result)
        # Once more (say, after the test cut the path) when the file appears.
        again = spec.get("again_when")
        if again:
            while not os.path.exists(again):
                time.sleep(0.05)
            self.guest_probe({**spec, "timeout": 3, "again_when": None})

    def forge_loopback_replies(self, spec, host_mac, receive):
        """A hostile guest, as tests/integration/spoofprobe.c: every 200 ms
        for spec["forge_seconds"], a UDP frame 127.0.0.53:6000 ->
        127.0.0.1:5000 (a forged reply in a conversation between two
        loopback sockets of the host) and, built the same way, one with the
        guest's own addresses GUEST:6000 -> HOST:5001; returns how many
        pairs were written."""
        fd, mac_text = self.tap
        mac = bytes.fromhex(mac_text.replace(":", ""))

        def frame(src, dst, sport, dport, payload):
            udp = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
            ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 1, 0x4000, 64, 17, 0,
                             socket.inet_aton(src), socket.inet_aton(dst))
            csum = sum(struct.unpack("!10H", ip))
            csum = (csum & 0xffff) + (csum >> 16)
            csum = ~((csum & 0xffff) + (csum >> 16)) & 0xffff
            ip = ip[:10] + struct.pack("!H", csum) + ip[12:]
            return bytes(VNET_HDR_LEN) + host_mac + mac + b"\x08\x00" + ip + udp

        forged = frame("127.0.0.53", "127.0.0.1", 6000, 5000, b"forged-loopback-reply")
        control = frame(spec["guest_ip"], spec["host_ip"], 6000, 5001, b"frame-from-guest")
        sent = 0
        deadline = time.monotonic() + spec["forge_seconds"]
        while time.monotonic() < deadline:
            os.write(fd, forged)
            os.write(fd, control)
            sent += 1
            receive(lambda f: None, timeout=0.2)   # answers the host's ARP meanwhile
        return sent

    def action(self, kind):
        if kind == "InstanceStart":
            if self.started:
                return 400, {"fault_message": "The requested operation is not supported after starting the microVM."}, None
            if not self.boot_source:
                return 400, {"fault_message": "Cannot start microvm without kernel configuration."}, None
            with open(self.resolve(self.boot_source["kernel_image_path"]), "rb") as f:
                if f.read(4) != b"\x7fELF":
                    # Released Firecracker (<= 1.16) boots only an ELF vmlinux.
                    return 400, {"fault_message": "Cannot load kernel due to invalid memory configuration or invalid kernel image: Invalid Elf magic number"}, None
            self.started = True
            if "ctrj.snap=1" in self.boot_source.get("boot_args", "").split():
                # the init stops at its snapshot point, before any driver
                os.write(1, b"\n" + SNAPSHOT_POINT + b"\n")
                self.record(event="snapshot_point")
                return 204, None, None
            return self.run_guest()
        if kind == "SendCtrlAltDel":
            if not self.started:
                return 400, {"fault_message": "The requested operation is not supported before starting the microVM."}, None
            # The guest's init forwards SIGTERM, the workload dies of it,
            # the init writes the status and reboots: Firecracker exits 0.
            return 204, None, lambda: self.reboot(status_record(STATE_SIGNALED, signal=15))
        return 204, None, None

    def run_guest(self):
        """The guest, once booted (or restored and told "go")."""
        vsock_hijack = self.config.get("hijack") and \
            self.config.get("hijack_target") == "vsock"
        if self.vsock:
            self.start_vsock()
            if vsock_hijack:  # before the host, which connects at once, can
                self.hijack()
        if self.config.get("guest_probe") and self.tap:
            threading.Thread(target=self.guest_probe, args=(self.config["guest_probe"],),
                             daemon=True).start()
        on_start = self.config.get("on_start", "wait")
        if on_start == "wait":
            return 204, None, self.hijack if self.config.get("hijack") and \
                not vsock_hijack else None
        return 204, None, lambda: self.reboot(status_record(STATE_EXITED, code=on_start["exit"]))

    # -- boot snapshots -----------------------------------------------------------
    def refuse(self, method, path, why, fault):
        self.record(event="violation", method=method, path=path, error=why)
        return 400, {"fault_message": fault}, None

    def snapshot_call(self, method, path, body):
        if path == "/vm":
            return self.vm_state(body["state"])
        if path.startswith("/drives/"):
            return self.repoint_drive(method, path, body)
        if path == "/snapshot/create":
            return self.snapshot_create(body)
        if path == "/snapshot/load":
            return self.snapshot_load(body)
        return self.refuse(method, path, "not modelled",
                           f"the stand-in does not serve {method} {path}")

    def vm_state(self, state):
        if not self.started:
            return self.refuse("PATCH", "/vm", f"{state} before the VM runs",
                               "The requested operation is not supported before starting the microVM.")
        if (state == "Paused") == self.paused:
            return self.refuse("PATCH", "/vm", f"{state} when already so",
                               f"The microVM is already {state.lower()}.")
        self.paused = state == "Paused"
        self.record(event="vm_state", state=state)
        if state == "Resumed" and self.loaded:
            return 204, None, self.restored_guest
        return 204, None, None

    def repoint_drive(self, method, path, body):
        drive_id = path.split("/")[-1]
        if method != "PATCH" or not self.started:
            return self.refuse(method, path, "drive update before the VM runs",
                               "The requested operation is not supported before starting the microVM.")
        if drive_id != body["drive_id"] or drive_id not in self.drives:
            return self.refuse(method, path, "unknown drive", f"Invalid block device ID: {drive_id}")
        drive = self.drives[drive_id]
        if "path_on_host" in body:
            self.open_file(body["path_on_host"], not drive.get("is_read_only", False))
            drive["path_on_host"] = body["path_on_host"]
            self.record(event="files", path=path,
                        files={"path_on_host": self.describe(body["path_on_host"])})
        return 204, None, None

    def snapshot_create(self, body):
        if not self.started or not self.paused:
            return self.refuse("PUT", "/snapshot/create", "create of a VM not paused",
                               "Cannot create snapshot: the microVM is not paused.")
        time.sleep(self.config.get("create_delay", 0))  # a slow save (the test kills the runtime)
        state = {"magic": STATE_MAGIC, "machine": self.machine, "boot_source": self.boot_source,
                 "drives": self.drives, "iface": self.iface, "vsock": self.vsock}
        with open(self.resolve(body["snapshot_path"]), "x") as f:
            json.dump(state, f)
        with open(self.resolve(body["mem_file_path"]), "xb") as f:
            f.write(MEM_MAGIC + os.urandom(4096))
            # as large as the guest's memory (sparse here): within the
            # jailer's fsize limit, or EFBIG
            f.truncate(self.machine["mem_size_mib"] << 20)
        self.record(event="snapshot_created", snapshot_path=body["snapshot_path"],
                    mem_file_path=body["mem_file_path"])
        return 204, None, None

    def snapshot_load(self, body):
        others = self.configured - {"/logger", "/metrics"}
        if self.started or self.loaded or others:
            return self.refuse("PUT", "/snapshot/load", f"load on a VMM not fresh: {sorted(others)}",
                               "Loading a microVM snapshot not allowed after configuring boot-specific resources.")
        backend = body.get("mem_backend", {})
        if backend.get("backend_type") != "File":
            return self.refuse("PUT", "/snapshot/load", "memory not from a File",
                               "the stand-in models only a File memory backend")
        files = {"snapshot_path": self.describe(body["snapshot_path"]),
                 "backend_path": self.describe(backend["backend_path"])}
        try:
            with open(self.resolve(body["snapshot_path"])) as f:
                state = json.load(f)
            with open(self.resolve(backend["backend_path"]), "rb") as f:
                mem_ok = f.read(len(MEM_MAGIC)) == MEM_MAGIC
            assert state.get("magic") == STATE_MAGIC and mem_ok
        except (ValueError, AssertionError, AttributeError):
            self.record(event="load_refused", files=files)
            return 400, {"fault_message": "Load snapshot error: Failed to restore from snapshot: Failed to get snapshot state from file: Crc64 validation failed"}, None
        self.machine, self.boot_source, self.vsock = state["machine"], state["boot_source"], state["vsock"]
        # as Firecracker: the drives are reopened at the paths they had
        for drive_id, drive in state["drives"].items():
            self.open_file(drive["path_on_host"], not drive.get("is_read_only", False))
            self.drives[drive_id] = drive
        if state["iface"]:
            overrides = {o["iface_id"]: o["host_dev_name"] for o in body.get("network_overrides", [])}
            iface = state["iface"]
            self.attach_tap(overrides.get(iface["iface_id"], iface["host_dev_name"]),
                            iface.get("guest_mac"))
        self.started = self.loaded = self.paused = True
        self.record(event="snapshot_loaded", files=files, resume_vm=body.get("resume_vm", False))
        if body.get("resume_vm"):
            self.paused = False
            return 204, None, self.restored_guest
        return 204, None, None

    def restored_guest(self):
        """The init, restored at its snapshot point: it reads the host's
        "go SEED SEC NSEC MAC" on the console, then runs as a booted guest."""
        line, deadline = b"", time.monotonic() + 30
        while not line.endswith(b"\n") and time.monotonic() < deadline:
            if select.select([0], [], [], 0.2)[0]:
                b = os.read(0, 1)
                if not b:
                    break
                line += b
        words = line.decode(errors="replace").split()
        ok = len(words) == 5 and words[0] == "go" and \
            re.fullmatch(r"[0-9a-f]{64}", words[1]) is not None and \
            words[2].isdigit() and abs(int(words[2]) - time.time()) < 60
        self.record(event="go", line=line.decode(errors="replace"), ok=ok)
        if not ok:
            self.record(event="violation", error=f"bad go line {line!r}")
        _, _, after = self.run_guest()
        if after:
            after()

    # -- the vsock device -------------------------------------------------------
    def start_vsock(self):
        """Firecracker binds uds_path (in the jail, relative to its root) and
        listens; every connection is the host's, asking for a guest port."""
        srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        srv.bind(self.resolve(self.vsock["uds_path"]))
        srv.listen(8)  # in this process: its pid is the peer's
        self.record(event="vsock_listen", uds_path=self.vsock["uds_path"])

        def accept():
            while True:
                conn, _ = srv.accept()
                threading.Thread(target=self.vsock_conn, args=(conn,), daemon=True).start()
        threading.Thread(target=accept, daemon=True).start()

    def vsock_conn(self, conn):
        line = b""
        while not line.endswith(b"\n") and len(line) < 64:
            b = conn.recv(1)
            if not b:
                break
            line += b
        self.vsock_conns += 1
        spec = self.config.get("vsock", {"mode": "close"})
        self.record(event="vsock_connect", line=line.decode("latin-1"), n=self.vsock_conns)
        mode = spec["mode"]
        if self.vsock_conns <= spec.get("closes", 0) or mode == "close" or \
                (mode == "agent" and line != b"CONNECT %d\n" % AGENT_VSOCK_PORT):
            conn.close()  # as Firecracker when nothing in the guest listens
        elif mode == "garbage":
            conn.sendall(b"HTTP/1.1 400 Bad Request\n")
            conn.close()
        elif mode == "silent":
            time.sleep(3600)
        else:
            conn.sendall(b"OK 1073741824\n")
            if spec.get("workload"):
                self.fake_workload(conn, spec["workload"])
            self.fake_agent(conn, spec.get("exit", 0))

    def fake_agent(self, conn, code):
        """The guest agent's side of the protocol, as little as exec needs."""
        def frame(kind, session, payload=b""):
            return struct.pack("<HHII", kind, 0, session, len(payload)) + payload

        conn.sendall(frame(AGENT_HELLO, 0, struct.pack("<I", AGENT_VERSION)))
        buf = b""
        while True:
            data = conn.recv(65536)
            if not data:
                return
            buf += data
            while len(buf) >= 12:
                kind, _, session, n = struct.unpack_from("<HHII", buf)
                if len(buf) < 12 + n:
                    break
                payload, buf = buf[12:12 + n], buf[12 + n:]
                if kind != AGENT_START:
                    continue
                args, off = [], 0
                while off + 8 <= len(payload):
                    rtype, _, rlen = struct.unpack_from("<HHI", payload, off)
                    if rtype == AGENT_REC_ARG:
                        args.append(payload[off + 8:off + 8 + rlen].decode())
                    off += 8 + rlen
                self.record(event="agent_start", argv=args)
                out = ("standin-agent ran: " + " ".join(args) + "\n").encode()
                conn.sendall(frame(AGENT_STDOUT, session, out) + frame(AGENT_STDOUT, session) +
                             frame(AGENT_STDERR, session) +
                             frame(AGENT_EXIT, session, struct.pack("<II", AGENT_EXITED, code)))

    def fake_workload(self, conn, w):
        """The guest init with the workload's stdio on the channel: its
        output on the main session, stdout and stderr apart; once the host
        gave all the credit back (it wrote the output out), the status on
        the control disk and the VM's end."""
        def frame(kind, payload=b""):
            return struct.pack("<HHII", kind, 0, AGENT_MAIN_SESSION, len(payload)) + payload

        out, err = w["stdout"].encode(), w["stderr"].encode()
        conn.sendall(struct.pack("<HHII", AGENT_HELLO, 0, 0, 4) + struct.pack("<I", AGENT_VERSION))
        conn.sendall(frame(AGENT_STDOUT, out) + frame(AGENT_STDERR, err) +
                     frame(AGENT_STDOUT) + frame(AGENT_STDERR))
        self.record(event="workload_output")
        owed, buf, deadline = len(out) + len(err), b"", time.monotonic() + 10
        conn.settimeout(1)
        while owed > 0 and time.monotonic() < deadline:
            try:
                data = conn.recv(65536)
            except socket.timeout:
                continue
            if not data:
                break
            buf += data
            while len(buf) >= 12:
                kind, _, session, n = struct.unpack_from("<HHII", buf)
                if len(buf) < 12 + n:
                    break
                if kind == AGENT_CREDIT and session == AGENT_MAIN_SESSION and n == 8:
                    owed -= struct.unpack_from("<II", buf, 12)[1]
                buf = buf[12 + n:]
        self.record(event="workload_drained", owed=owed)
        self.reboot(status_record(STATE_EXITED, code=w.get("exit", 0)))

    # -- a compromised Firecracker ---------------------------------------------
    def hijack(self):
        """Replace the API socket, which lives in a directory the VMM owns:
        {"symlink": PATH} by a symlink to another socket, "socket" by a
        socket a child process serves (same uid, another pid). That child
        records every connection and what it received."""
        target = self.vsock["uds_path"] if self.config.get("hijack_target") == "vsock" \
            else self.sock_path
        sock = self.resolve(target)
        how = self.config["hijack"]
        if how == "socket":
            tmp = sock + ".new"
            r, w = os.pipe()
            if os.fork() == 0:
                os.close(r)
                srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                srv.bind(tmp)
                srv.listen(8)  # in this process: its pid is the peer's
                os.write(w, b"x")
                while True:
                    conn, _ = srv.accept()
                    conn.settimeout(2)
                    try:
                        data = conn.recv(4096)
                    except OSError:
                        data = b""
                    self.record(event="hijacked", by="child", received=data.decode("latin-1"))
                    conn.close()
            os.close(w)
            os.read(r, 1)
            os.rename(tmp, sock)
        else:
            os.unlink(sock)
            os.symlink(how["symlink"], sock)
        self.record(event="hijack", how=how)

    def reboot(self, record):
        control = self.drives.get("control")
        if control is None:
            self.record(event="violation", error="no control drive to write the status to")
        else:
            with open(self.resolve(control["path_on_host"]), "r+b") as f:
                f.seek(CTL_STATUS_OFF)
                f.write(record)
        self.record(event="exit", code=0)
        os._exit(0)


def serve(fc, sock_path):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def _body(self):
            n = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(n) if n else b""
            return raw

        def _answer(self, method):
            raw = self._body()
            body = None
            if method in ("PUT", "PATCH"):
                try:
                    body = json.loads(raw)
                except ValueError as e:
                    fc.record(event="violation", method=method, path=self.path,
                              error=f"not JSON: {e}")
                    self._send(400, {"fault_message": f"invalid JSON: {e}"})
                    return
            status, payload, after = fc.handle(method, self.path, body)
            fc.record(event="call", method=method, path=self.path, body=body, status=status,
                      answer=payload,
                      content_type=self.headers.get("Content-Type"))
            self._send(status, payload)
            if after:
                after()

        def _send(self, status, payload):
            data = json.dumps(payload).encode() if payload is not None else b""
            self.send_response(status)
            if data:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if data:
                self.wfile.write(data)
            self.wfile.flush()

        def do_GET(self):
            self._answer("GET")

        def do_PUT(self):
            self._answer("PUT")

        def do_PATCH(self):
            self._answer("PATCH")

    fc.sock_path = sock_path
    server = socketserver.UnixStreamServer(fc.resolve(sock_path), Handler)
    server.serve_forever()


def main(argv, config):
    args = {}
    i = 0
    while i < len(argv):
        if argv[i].startswith("--") and i + 1 < len(argv) and not argv[i + 1].startswith("--"):
            args[argv[i][2:]] = argv[i + 1]
            i += 2
        else:
            args[argv[i][2:]] = True
            i += 1
    fc = Firecracker(config, argv)
    stdio = []
    for fd in range(3):
        try:
            stdio.append(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:
            stdio.append(None)
    fc.record(event="start", argv=argv, uid=os.getuid(), gid=os.getgid(),
              groups=os.getgroups(), jailed=fc.jailed, cwd=os.getcwd(),
              env=sorted(os.environ), pid=os.getpid(), fds=sorted(int(x) for x in os.listdir("/proc/self/fd")),
              sid=os.getsid(0), stdio=stdio)
    if "api-sock" not in args:
        print("firecracker stand-in: --api-sock is required", file=sys.stderr)
        return 153
    # A slow start ("api_delay" seconds): the runtime is still waiting for
    # the API, and has not recorded the VMM yet.
    time.sleep(config.get("api_delay", 0))
    serve(fc, args["api-sock"])
    return 0
