# SPDX-License-Identifier: Apache-2.0
"""config.json's process privileges and limits applied in the guest, as
runc applies them (defence in depth behind the VM): capabilities (the
bounding set dropped, then exactly the spec's sets), rlimits,
user.additionalGids, noNewPrivileges, oomScoreAdj, and
linux.resources.pids.limit as a pids cgroup in the guest. Asserted on what
the workload and `exec --process` sessions read from /proc in the VM; one
VM for all of it (CI time), the exec without those fields the negative
control. The engine's /etc/hosts, /etc/hostname and /etc/resolv.conf
(bind mounts of files) are the guest's, rewrites included, and nothing
else of their directory."""
import json
import re

import pytest

from test_runtime import drive_created, world  # noqa: F401 (fixtures)
from test_runtime_docker import docker, engine, run, wait_log  # noqa: F401

# Bit numbers (linux/capability.h)
CAPS = {"CAP_CHOWN": 0, "CAP_DAC_OVERRIDE": 1, "CAP_FOWNER": 3, "CAP_FSETID": 4,
        "CAP_KILL": 5, "CAP_SETGID": 6, "CAP_SETUID": 7, "CAP_SETPCAP": 8,
        "CAP_NET_BIND_SERVICE": 10, "CAP_NET_RAW": 13, "CAP_SYS_CHROOT": 18,
        "CAP_MKNOD": 27, "CAP_AUDIT_WRITE": 29, "CAP_SETFCAP": 31}
# docker's default set without NET_RAW (--cap-drop NET_RAW)
WORKLOAD_CAPS = [c for c in CAPS if c != "CAP_NET_RAW"]


def mask(names):
    return sum(1 << CAPS[n] for n in names)


# What a process reports about itself: its status lines, rlimits, oom
# score, cgroup and (the workload) how many of 40 children it could fork.
REPORT = ("grep -E '^(CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs|Groups):' /proc/self/status;"
          " echo nofile=$(ulimit -n) nofile_hard=$(ulimit -Hn);"
          " echo oom=$(cat /proc/self/oom_score_adj);"
          " echo cgroup=$(awk -F: '{print $3}' /proc/self/cgroup)")
FORKS = ("cg=$(awk -F: '{print $3}' /proc/self/cgroup);"
         # neither raising the limit nor leaving the group works (root without
         # CAP_SYS_ADMIN: /sys/fs/cgroup is read-only)
         " (echo max > /sys/fs/cgroup$cg/pids.max; echo $$ > /sys/fs/cgroup/cgroup.procs)"
         " 2>/dev/null; echo pids_max=$(cat /sys/fs/cgroup$cg/pids.max)"
         " cgroup_now=$(awk -F: '{print $3}' /proc/self/cgroup);"
         # forks until the limit stops them (the subshell ends there), each
         # child's pid noted; then killed with builtins only (no fork to fail)
         " (i=0; while [ $i -lt 40 ]; do sleep 600 & echo $! >> /run/forked; i=$((i+1)); done)"
         " 2>/dev/null; n=0; while read p; do kill $p; n=$((n+1)); done < /run/forked;"
         " echo forked=$n;")


# Every virtiofs tag mounted again by root in the guest (as a hostile guest
# kernel could ask virtiofsd), its top listed and a private file tried.
TAGS = ("echo '<tags>'; for t in 0 1 2 3 4 5 6 7 8 9; do mkdir -p /run/m$t;"
        " mount -t virtiofs -o ro ctrj$t /run/m$t 2>/dev/null || continue;"
        " echo \"ctrj$t: $(ls -A /run/m$t | tr '\\n' ' ')\"; cat /run/m$t/config.v2.json;"
        " umount /run/m$t; done 2>/dev/null; echo '</tags>'")
# On the host: what each virtiofsd of the engine's directory DIR sees there
# (the covered directory in its namespace) and at its root (once pivoted).
SERVED = ("for p in $(pgrep -x virtiofsd); do tr '\\0' ' ' < /proc/$p/cmdline |"
          " grep -qF 'source=DIR ' || continue; ls -A /proc/$p/root/ | tr '\\n' ' '; echo;"
          " ls -A /proc/$p/rootDIR 2>/dev/null | tr '\\n' ' '; echo; done")


def parse(text, tag):
    """The KEY: value and KEY=value lines a report printed after "tag"."""
    out = {}
    for line in text.split(f"<{tag}>", 1)[1].split(f"</{tag}>", 1)[0].splitlines():
        for part in line.replace(":\t", "=").split():
            if "=" in part:
                k, v = part.split("=", 1)
                out[k] = v
        if line.startswith("Groups:"):
            out["Groups"] = line.split(":", 1)[1].split()
    return out


def report(tag, extra=""):
    return f"echo '<{tag}>'; {REPORT}; {extra} echo '</{tag}>'"


def test_process_privileges_and_limits(world):  # noqa: F811
    """The workload runs with exactly the spec's capability sets (NET_RAW
    dropped from docker's defaults), its groups, nofile limit,
    no_new_privs and oom_score_adj, in a pids cgroup of pids.max 20 that
    stops its forks. An exec whose process.json names other sets (a
    non-root user with an ambient capability) gets those; one without any
    gets root's full sets and the guest's defaults, as before."""
    # the engine's files for the container, and what else its directory holds
    ctr_dir = world.tmp / "containers" / "abc123"
    ctr_dir.mkdir(parents=True)
    (ctr_dir / "hosts").write_text("127.0.0.1\tlocalhost\n10.88.0.5\tengine-made\n")
    (ctr_dir / "hostname").write_text("engine-hostname\n")
    (ctr_dir / "resolv.conf").write_text("nameserver 192.0.2.53\nsearch engine.example\n")
    (ctr_dir / "config.v2.json").write_text("engine-private\n")
    files = [{"destination": f"/etc/{n}", "type": "bind", "source": str(ctr_dir / n),
              "options": ["rbind", "rprivate"]} for n in ("hosts", "hostname", "resolv.conf")]
    etc = ("echo '<f>'; cat /etc/hosts /etc/hostname /etc/resolv.conf;"
           " grep -E ' /etc/(hosts|hostname|resolv.conf) ' /proc/mounts;"
           " ls -A /run/ctrj-files/*; grep -rl engine-private /run /etc; echo '</f>';")
    caps = {s: WORKLOAD_CAPS for s in ("bounding", "effective", "permitted")}
    caps["inheritable"] = caps["ambient"] = []
    b = world.bundle(["/bin/sh", "-c", etc + report("w", FORKS) + "; echo ready; "
                      "exec sleep 100000"], mounts=files,
                     capabilities=caps, noNewPrivileges=True, oomScoreAdj=300,
                     rlimits=[{"type": "RLIMIT_NOFILE", "hard": 1000, "soft": 1000}],
                     user={"uid": 0, "gid": 0, "additionalGids": [10, 1234]})
    config = json.loads((b / "config.json").read_text())
    config["linux"]["resources"] = {"pids": {"limit": 20}}
    config["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ERRNO"}
    (b / "config.json").write_text(json.dumps(config))

    exec_caps = {"bounding": ["CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_CHOWN"],
                 "effective": ["CAP_NET_BIND_SERVICE"],
                 "permitted": ["CAP_NET_BIND_SERVICE", "CAP_CHOWN"],
                 "inheritable": ["CAP_NET_BIND_SERVICE"],
                 "ambient": ["CAP_NET_BIND_SERVICE"]}
    with_fields = world.tmp / "exec-caps.json"
    with_fields.write_text(json.dumps({
        "args": ["/bin/sh", "-c", report("e")], "env": ["PATH=/bin"], "cwd": "/",
        "user": {"uid": 1000, "gid": 1000, "additionalGids": [2000, 3000]},
        "capabilities": exec_caps, "noNewPrivileges": True,
        "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 600, "soft": 500}]}))
    without = world.tmp / "exec-plain.json"
    without.write_text(json.dumps({"args": ["/bin/sh", "-c", report("p", "cat /etc/hosts;")
                                            + "; " + TAGS],
                                   "env": ["PATH=/bin"],
                                   "cwd": "/", "user": {"uid": 0, "gid": 0}}))
    out_file = world.tmp / "stdout"
    ready = ["sh", "-c", f"for i in $(seq 600); do grep -q ready {out_file} && exit 0; "
             "sleep 1; done; exit 1"]
    rewrite = ["sh", "-c", f"echo '10.88.0.9 rewritten' > {ctr_dir}/hosts; sleep 2"]  # in place
    served = ["sh", "-c", SERVED.replace("DIR", str(ctr_dir))]
    steps = [["start", "g1"], ["run", ready], ["run", served], ["run", rewrite],
             ["exec", "--process", str(with_fields), "g1"],
             ["exec", "--process", str(without), "g1"], ["kill", "g1", "KILL"], ["wait"],
             ["delete", "g1"]]
    (start, up, view, _, ex, plain, _, exited, delete), text = drive_created(world, b, "g1",
                                                                            steps)
    assert start["rc"] == 0 and up["rc"] == 0, (start, up, text)
    assert exited["exit"] == 137 and delete["rc"] == 0, text

    f = text.split("<f>", 1)[1].split("</f>", 1)[0]
    assert "10.88.0.5\tengine-made" in f and "engine-hostname" in f, text
    assert "nameserver 192.0.2.53" in f and "search engine.example" in f, text
    for n in ("hosts", "hostname", "resolv.conf"):  # bound, read-only, as mounts
        assert re.search(rf"^\S+ /etc/{n} virtiofs ro,", f, re.M), text
    assert "config.v2.json" not in f and "engine-private" not in f, text
    # what virtiofsd serves of the engine's directory (its view on the host:
    # the covered directory, its root once pivoted there): those names alone
    bound = "hostname hosts resolv.conf "
    assert view["rc"] == 0 and bound in view["stdout"].splitlines(), view
    assert "config.v2.json" not in view["stdout"], view
    # a guest kernel asking virtiofsd for the share's root (the root exec
    # mounts every tag again) finds those names alone, and the negative
    # control: the probe did reach that share
    tags = plain["stdout"].split("<tags>", 1)[1].split("</tags>", 1)[0]
    assert re.search(rf"^ctrj\d+: {bound}$", tags, re.M), plain
    assert "config.v2.json" not in tags and "engine-private" not in tags, plain

    w = parse(text, "w")
    want = f"{mask(WORKLOAD_CAPS):016x}"
    assert (w["CapBnd"], w["CapEff"], w["CapPrm"]) == (want, want, want), text
    assert w["CapInh"] == w["CapAmb"] == f"{0:016x}", text
    assert w["NoNewPrivs"] == "1" and w["Groups"] == ["10", "1234"], text
    assert w["nofile"] == w["nofile_hard"] == "1000" and w["oom"] == "300", text
    assert w["cgroup"] == w["cgroup_now"] == "/workload" and w["pids_max"] == "20", text
    assert 0 < int(w["forked"]) < 20, text  # the limit stopped the forks

    e = parse(ex["stdout"], "e")
    assert ex["rc"] == 0, ex
    assert e["CapBnd"] == f"{mask(exec_caps['bounding']):016x}", ex
    nbs = f"{mask(['CAP_NET_BIND_SERVICE']):016x}"  # a non-root user keeps the ambient set
    assert (e["CapEff"], e["CapPrm"], e["CapInh"], e["CapAmb"]) == (nbs, nbs, nbs, nbs), ex
    assert e["NoNewPrivs"] == "1" and e["Groups"] == ["2000", "3000"], ex
    assert (e["nofile"], e["nofile_hard"]) == ("500", "600"), ex
    assert e["cgroup"] == "/workload", ex  # exec sessions count against the pids limit

    p = parse(plain["stdout"], "p")  # the negative control: nothing asked
    assert plain["rc"] == 0, plain
    full = int(p["CapBnd"], 16)
    assert full & mask(CAPS) == mask(CAPS) and full >> 21 & 1, plain  # CAP_SYS_ADMIN too
    assert p["CapEff"] == p["CapPrm"] == p["CapBnd"], plain
    assert p["NoNewPrivs"] == "0" and p["oom"] == "0" and p["nofile"] != "1000", plain
    assert "10.88.0.9 rewritten" in plain["stdout"], plain  # the engine's rewrite

    # what is applied is no longer named as not applied; seccomp still is
    warned = [l["msg"] for l in world.log_lines() if "not applied" in l.get("msg", "")]
    assert warned and "seccomp" in warned[0], warned
    assert not any(w in warned[0] for w in ("capabilities", "rlimits", "noNewPrivileges",
                                             "oomScoreAdj")), warned


@pytest.mark.xdist_group("docker")
def test_docker_run_process_options(docker):  # noqa: F811
    """A real dockerd's spec: --cap-drop, --ulimit, --group-add,
    --security-opt no-new-privileges, --oom-score-adj and --pids-limit
    reach the guest, for the workload and for `docker exec` (docker's
    process.json carries the container's sets); the engine's /etc/hosts
    and /etc/hostname are bound there. One VM."""
    name = "ctrj-guestproc"
    r = run(docker, "-d", "--name", name, "--hostname", "dockbox", "--cap-drop", "NET_RAW",
            "--ulimit", "nofile=1000:1000", "--group-add", "1234",
            "--security-opt", "no-new-privileges", "--oom-score-adj", "300",
            "--pids-limit", "50", "busybox", "sh", "-c",
            report("w", "echo pids_max=$(cat /sys/fs/cgroup/workload/pids.max);") +
            "; cat /etc/hostname; grep -E ' /etc/(hosts|hostname|resolv.conf) ' /proc/mounts;"
            " echo serving; exec sleep 100000")
    assert r.returncode == 0, r.stderr.decode() + docker.log_tail()
    wait_log(docker, name, "serving")
    ex = docker.docker("exec", name, "sh", "-c", report("e"), check=False)
    out = docker.logs(name)
    docker.docker("rm", "-f", name)
    want = f"{mask(WORKLOAD_CAPS):016x}"  # docker's defaults without NET_RAW
    for tag, text in (("w", out), ("e", ex.stdout.decode())):
        w = parse(text, tag)
        assert (w["CapBnd"], w["CapEff"], w["CapPrm"]) == (want, want, want), (tag, text)
        assert "1234" in w["Groups"] and w["NoNewPrivs"] == "1", (tag, text)
        assert w["cgroup"] == "/workload", (tag, text)
    w = parse(out, "w")
    assert w["nofile"] == w["nofile_hard"] == "1000" and w["oom"] == "300", out
    assert w["pids_max"] == "50", out
    assert "dockbox" in out.split("</w>", 1)[1], out  # docker's /etc/hostname
    assert re.search(r"^\S+ /etc/hosts virtiofs ro,", out, re.M), out
