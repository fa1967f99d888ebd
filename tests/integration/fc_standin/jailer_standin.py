# SPDX-License-Identifier: Apache-2.0
"""A stand-in for Firecracker's `jailer`, for contract tests only (see
firecracker_standin.py for why stand-ins exist at all).

It parses the jailer's command line as the jailer does
(src/jailer/src/main.rs: --id --exec-file --uid --gid --chroot-base-dir
--netns --daemonize --new-pid-ns --cgroup... --resource-limit...
--cgroup-version --parent-cgroup, then -- and Firecracker's arguments),
records it with what else ctr-jailer handed over (its environment, session
and fds 0-2), inspects the chroot ctr-jailer handed it and then does what the
jailer does to it: closes inherited fds, clears the environment, copies the
exec file into <chroot-base>/<exec name>/<id>/root, chowns / /dev /dev/net
/run to uid:gid (0700), makes /dev/kvm and /dev/net/tun, applies the
resource limits, and with --new-pid-ns forks the exec file into a new pid
namespace, writes <root>/<exec name>.pid and exits 0. With "cgroups" in its
configuration it also makes the VM's cgroups as the jailer does and joins
them before it forks (see join_cgroups); with "after_fork" it fails after
forking, as a jailer that died half-way would ({"exit": N}: exit N;
{"pid_file": TEXT}: a pid file that names no child of the runtime). It insists on
--netns, as ctr-jailer must give it: the path must name a network namespace
other than the jailer's own (the runtime's); it joins it as the jailer does
before anything else and records the links it finds there.

What it cannot do: chroot/pivot_root (Python is not inside the jail), so
the jailed stand-in firecracker gets the jail root as its working directory
and resolves the paths it is given against it, and it is started from the
exec file's own path rather than from the copy in the jail. Without "cgroups" in its
configuration, cgroup arguments are only recorded: the host's cgroups are never touched.

A wrapper generated per test holds CONFIG and calls main().
"""
import ctypes
import fcntl
import json
import os
import re
import resource
import shutil
import stat
import subprocess
import sys
import time

CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
NS_GET_NSTYPE = 0xb703  # _IO(0xb7, 0x3), linux/nsfs.h


def parse(argv):
    single = {"id", "exec-file", "uid", "gid", "chroot-base-dir", "netns", "cgroup-version",
              "parent-cgroup"}
    multi = {"cgroup", "resource-limit"}
    flags = {"daemonize", "new-pid-ns"}
    args = {"chroot-base-dir": "/srv/jailer", "cgroup-version": "1", "cgroup": [],
            "resource-limit": []}
    extra = []
    i = 0
    while i < len(argv):
        a = argv[i]
        if a == "--":
            extra = argv[i + 1:]
            break
        if not a.startswith("--"):
            raise SystemExit(f"jailer stand-in: unexpected argument {a!r}")
        name = a[2:]
        if name in flags:
            args[name] = True
            i += 1
        elif name in single or name in multi:
            if i + 1 >= len(argv):
                raise SystemExit(f"jailer stand-in: {a} needs a value")
            if name in multi:
                args[name].append(argv[i + 1])
            else:
                if name in args and name not in ("chroot-base-dir", "cgroup-version"):
                    raise SystemExit(f"jailer stand-in: {a} given twice")
                args[name] = argv[i + 1]
            i += 2
        else:
            raise SystemExit(f"jailer stand-in: unknown argument {a!r}")
    for required in ("id", "exec-file", "uid", "gid"):
        if required not in args:
            raise SystemExit(f"jailer stand-in: --{required} is required")
    return args, extra


def describe(path):
    st = os.lstat(path)
    return {"name": os.path.basename(path), "ino": st.st_ino, "dev": st.st_dev,
            "nlink": st.st_nlink, "uid": st.st_uid, "gid": st.st_gid, "mode": st.st_mode,
            "size": st.st_size,
            "type": "dir" if stat.S_ISDIR(st.st_mode) else "file" if stat.S_ISREG(st.st_mode)
            else "fifo" if stat.S_ISFIFO(st.st_mode) else "blk" if stat.S_ISBLK(st.st_mode)
            else "other"}


def inspect(root):
    """What ctr-jailer put in the chroot, before the jailer touches it."""
    entries = []
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            d = describe(os.path.join(dirpath, name))
            d["name"] = os.path.relpath(os.path.join(dirpath, name), root)
            entries.append(d)
    run = os.path.join(root, "run")
    return {"root": describe(root), "entries": entries,
            "run_is_mount": os.path.ismount(run)}


def links_here():
    """The links of the current network namespace: name, kind (the rtnetlink
    link kind, or the link type for lo), and whether a veth's peer lives in
    another namespace."""
    ip = next(p for p in ("/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip")
              if os.path.exists(p))
    out = subprocess.run([ip, "-j", "-d", "link", "show"], capture_output=True, check=True).stdout
    return [{"name": l["ifname"],
             "kind": l.get("linkinfo", {}).get("info_kind", l.get("link_type")),
             "peer_elsewhere": "link_netnsid" in l} for l in json.loads(out)]


def join_netns(path, problems):
    """What the jailer does with --netns (setns before the chroot), with
    the checks a jailer would not make: it is a network namespace, and
    not the one the jailer was started in."""
    if path is None:
        problems.append("no --netns: Firecracker would share the runtime's network namespace")
        return None
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as e:
        problems.append(f"--netns {path}: {e.strerror}")
        return None
    try:
        nstype = fcntl.ioctl(fd, NS_GET_NSTYPE)
    except OSError:
        nstype = None
    st, own = os.fstat(fd), os.stat("/proc/self/ns/net")
    seen = {"path": path, "is_netns": nstype == CLONE_NEWNET,
            "is_runtime_ns": (st.st_dev, st.st_ino) == (own.st_dev, own.st_ino)}
    if not seen["is_netns"]:
        problems.append(f"--netns {path} is not a network namespace")
    elif seen["is_runtime_ns"]:
        problems.append(f"--netns {path} is the runtime's own network namespace")
    else:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.setns(fd, CLONE_NEWNET) != 0:
            problems.append(f"setns {path}: {os.strerror(ctypes.get_errno())}")
        else:
            seen["links"] = links_here()
    os.close(fd)
    return seen


def stdio():
    """What fds 0-2 are (their /proc/self/fd targets)."""
    out = []
    for fd in range(3):
        try:
            out.append(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:
            out.append(None)
    return out


def own_cgroup(controller):
    """This process's cgroup in the hierarchy of controller (None: v2)."""
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, names, path = line.rstrip("\n").split(":", 2)
            if (controller is None and names == "") or controller in names.split(","):
                return path
    return None


def join_cgroups(args, exec_name, problems):
    """What the jailer does with --cgroup FILE=VALUE: the cgroup
    <mount>/<exec name>/<id> (v2) or <mount>/<controller>/<exec name>/<id>
    (v1, for each controller named), the values written, and the jailer in
    it, so that Firecracker, forked next, is in it too. One difference: a
    hierarchy in which the test's own process is not at the root (the
    machinery that runs the tests may keep it in a memory cgroup of its
    own, which it must not leave) gets the cgroup and its values but is not
    joined. Returns the cgroups joined."""
    values = [cg.split("=", 1) for cg in args["cgroup"]]
    if args["cgroup-version"] == "2":
        groups = {None: values}
    else:
        groups = {}
        for name, value in values:
            groups.setdefault(name.split(".")[0], []).append((name, value))
    joined = []
    for controller, files in groups.items():
        if controller is None and own_cgroup(None) != "/":
            continue  # v2: the subtree where the test runs is not the jailer's to reshape
        mount = "/sys/fs/cgroup" if controller is None else f"/sys/fs/cgroup/{controller}"
        path = os.path.join(mount, exec_name, args["id"])
        try:
            os.makedirs(path, exist_ok=True)
            if controller is None:
                with open(os.path.join(mount, exec_name, "cgroup.subtree_control"), "w") as f:
                    f.write(" ".join("+" + n.split(".")[0] for n, _ in files))
            for name, value in files:
                with open(os.path.join(path, name), "w") as f:
                    f.write(value)
            if own_cgroup(controller) == "/":
                with open(os.path.join(path, "cgroup.procs"), "w") as f:
                    f.write(str(os.getpid()))
                joined.append(path)
        except OSError as e:
            problems.append(f"cgroup {path}: {e}")
    return joined


def main(argv, config):
    start_us = int(time.time() * 1e6)
    # What ctr-jailer handed over, before the jailer clears it.
    env = dict(os.environ)
    env.pop("LC_CTYPE", None)  # Python's own (PEP 538), not inherited
    handed = {"env": env, "sid": os.getsid(0), "pgid": os.getpgid(0), "stdio": stdio()}
    # The jailer's first act: no inherited fds but 0-2, no environment.
    os.closerange(3, 65536)
    for key in list(os.environ):
        del os.environ[key]
    args, extra = parse(argv)
    problems = []
    if not re.fullmatch(r"[A-Za-z0-9-]{1,64}", args["id"]):
        problems.append(f"invalid --id {args['id']!r}")
    exec_file = os.path.realpath(args["exec-file"])
    exec_name = os.path.basename(exec_file)
    if not os.path.isfile(exec_file):
        problems.append(f"--exec-file {exec_file} is not a file")
    if "firecracker" not in exec_name:
        problems.append(f"--exec-file name {exec_name} lacks 'firecracker'")
    uid, gid = int(args["uid"]), int(args["gid"])
    if args["cgroup-version"] not in ("1", "2"):
        problems.append(f"--cgroup-version {args['cgroup-version']}")
    for cg in args["cgroup"]:
        parts = cg.split("=")
        if len(parts) != 2 or not parts[1] or "." not in parts[0]:
            problems.append(f"--cgroup {cg!r} is not <controller>.<file>=<value>")
    for rl in args["resource-limit"]:
        name, _, value = rl.partition("=")
        if name not in ("fsize", "no-file") or not value.isdigit():
            problems.append(f"--resource-limit {rl!r}")
    base = os.path.realpath(args["chroot-base-dir"])
    root = os.path.join(base, exec_name, args["id"], "root")
    seen = inspect(root) if os.path.isdir(root) else None
    if seen is None:
        problems.append(f"no chroot directory {root}")
    netns = join_netns(args.get("netns"), problems)
    cgroups = join_cgroups(args, exec_name, problems) if config.get("cgroups") else []
    with open(config["record"], "w") as f:
        json.dump({"argv": argv, "args": args, "extra": extra, "root": root,
                   "chroot": seen, "netns": netns, "problems": problems,
                   "cgroups": cgroups, "pid": os.getpid(), **handed}, f)
    if problems:
        print("jailer stand-in: " + "; ".join(problems), file=sys.stderr)
        return 1

    # What the jailer does to the chroot.
    shutil.copy2(exec_file, os.path.join(root, exec_name))
    for d in ("", "dev", "dev/net", "run"):
        p = os.path.join(root, d)
        os.makedirs(p, exist_ok=True)
        os.chmod(p, 0o700)
        os.chown(p, uid, gid)
    for dev, major, minor in (("dev/net/tun", 10, 200), ("dev/kvm", 10, 232)):
        p = os.path.join(root, dev)
        os.mknod(p, stat.S_IFCHR | 0o600, os.makedev(major, minor))
        os.chown(p, uid, gid)
    for rl in args["resource-limit"]:
        name, _, value = rl.partition("=")
        which = resource.RLIMIT_FSIZE if name == "fsize" else resource.RLIMIT_NOFILE
        resource.setrlimit(which, (int(value), int(value)))
    os.chdir(root)  # the stand-in for chroot + pivot_root

    # The real jailer execs its copy, /<exec name> in the chroot. Python,
    # which runs the stand-in, opens its script by absolute path, through
    # directories the jail user may not traverse: it runs the original.
    fc_argv = [exec_file, "--id", args["id"], "--start-time-us", str(start_us),
               "--start-time-cpu-us", "0", "--parent-cpu-time-us", "0", *extra]
    env = {"STANDIN_JAILED": "1"}

    def exec_firecracker():
        os.setgroups([])
        os.setgid(gid)
        os.setuid(uid)
        os.execve(fc_argv[0], fc_argv, env)

    if not args.get("new-pid-ns"):
        exec_firecracker()
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWPID) != 0:
        print(f"jailer stand-in: unshare: {os.strerror(ctypes.get_errno())}", file=sys.stderr)
        return 1
    pid = os.fork()
    if pid == 0:
        try:
            exec_firecracker()
        finally:
            os._exit(127)
    after = config.get("after_fork", {})
    fd = os.open(os.path.join(root, exec_name + ".pid"), os.O_WRONLY | os.O_CREAT | os.O_EXCL,
                 0o644)
    os.write(fd, after.get("pid_file", str(pid)).encode())
    os.close(fd)
    return after.get("exit", 0)
