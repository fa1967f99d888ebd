# SPDX-License-Identifier: Apache-2.0
"""The engine's /etc/hosts, /etc/hostname and /etc/resolv.conf reach the
guest through a read-only share of their directory: what that share
serves must be those files alone, even to a guest that mounts the share's
tag again (root with CAP_SYS_ADMIN, or a hostile guest kernel), and a file
that is a symlink out of that directory (a host's /etc/resolv.conf) is
the file it names; a tmpfs the spec mounts on /run (containerd's) does not
cover the share's hidden path. An exec without --process gets the
container's process privileges (its capability sets), as runc's exec
does, not root's full sets; its --user and --no-new-privs apply. One VM."""
import os
import re

from test_runtime import drive_created, world  # noqa: F401 (fixtures)

CAP_BITS = {"CAP_CHOWN": 0, "CAP_DAC_OVERRIDE": 1, "CAP_FOWNER": 3, "CAP_KILL": 5,
            "CAP_SETGID": 6, "CAP_SETUID": 7, "CAP_SYS_ADMIN": 21, "CAP_MKNOD": 27}
# the workload's (CAP_SYS_ADMIN: it mounts the share again)
CAPS = list(CAP_BITS)


def test_etc_files_share_serves_only_those_files(world):  # noqa: F811
    ctr_dir = world.tmp / "containers" / "abc123"
    ctr_dir.mkdir(parents=True)
    (ctr_dir / "hosts").write_text("127.0.0.1\tlocalhost\n10.88.0.5\tengine-made\n")
    (ctr_dir / "hostname").write_text("engine-hostname\n")
    real = world.tmp / "resolve"  # systemd-resolved's layout: a link out of the directory
    real.mkdir()
    (real / "stub-resolv.conf").write_text("nameserver 192.0.2.53\n")
    os.symlink("../../resolve/stub-resolv.conf", ctr_dir / "resolv.conf")
    (ctr_dir / "config.v2.json").write_text("engine-private\n")
    (ctr_dir / "secrets").mkdir()
    (ctr_dir / "secrets" / "token").write_text("engine-private\n")
    files = [{"destination": f"/etc/{n}", "type": "bind", "source": str(ctr_dir / n),
              "options": ["rbind", "rprivate"]} for n in ("hosts", "hostname", "resolv.conf")]
    # the workload (root, CAP_SYS_ADMIN among its capabilities) mounts every tag again
    probe = ("echo '<f>'; cat /etc/hosts /etc/hostname /etc/resolv.conf; mkdir -p /mnt/t;"
             " for i in 0 1 2 3 4 5 6 7; do mount -t virtiofs ctrj$i /mnt/t 2>/dev/null &&"
             " { echo tag$i: $(ls -A /mnt/t); cat /mnt/t/config.v2.json /mnt/t/secrets/token;"
             " touch /mnt/t/new && echo wrote; umount /mnt/t; }; done 2>&1; echo '</f>'")
    # a tmpfs on /run, as containerd's spec has, above the hidden share's path
    run_tmpfs = {"destination": "/run", "type": "tmpfs", "source": "tmpfs",
                 "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}
    caps = {s: CAPS for s in ("bounding", "effective", "permitted")}
    out_file = world.tmp / "stdout"
    ready = ["sh", "-c", f"for i in $(seq 600); do grep -q ready {out_file} && exit 0; "
             "sleep 1; done; exit 1"]
    b = world.bundle(["/bin/sh", "-c", probe + "; echo ready; exec sleep 100000"],
                     mounts=[run_tmpfs, *files], capabilities=caps)
    # exec without --process: config.json's process privileges, as runc's
    steps = [["start", "r1"], ["run", ready],
             ["exec", "r1", "/bin/sh", "-c", "grep -E '^Cap(Bnd|Eff)' /proc/self/status"],
             ["exec", "--user", "1000:1000", "--no-new-privs", "r1", "/bin/sh", "-c",
              "echo uid=$(id -u) gid=$(id -g); grep NoNewPrivs /proc/self/status"],
             ["kill", "r1", "KILL"], ["wait"], ["delete", "r1"]]
    (start, up, ex, ex2, _, exited, delete), text = drive_created(world, b, "r1", steps)
    assert start["rc"] == 0 and up["rc"] == 0 and delete["rc"] == 0, (start, text)
    want = f"{sum(1 << CAP_BITS[c] for c in CAPS):016x}"
    assert ex["rc"] == 0, ex
    assert f"CapBnd:\t{want}" in ex["stdout"] and f"CapEff:\t{want}" in ex["stdout"], ex
    # runc exec's --user and --no-new-privs are applied, not ignored
    assert ex2["rc"] == 0 and "uid=1000 gid=1000" in ex2["stdout"], ex2
    assert "NoNewPrivs:\t1" in ex2["stdout"], ex2
    assert "<f>" in text, text
    f = text.split("<f>", 1)[1].split("</f>", 1)[0]
    assert "10.88.0.5\tengine-made" in f and "engine-hostname" in f, text
    assert "nameserver 192.0.2.53" in f, text  # the symlink's target
    # the share mounted again: the three files, nothing else, read-only
    assert re.search(r"^tag\d: hostname hosts resolv.conf$", f, re.M), text
    assert "engine-private" not in f and "wrote" not in f, text
    assert exited["exit"] == 137, text
