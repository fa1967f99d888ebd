# SPDX-License-Identifier: Apache-2.0
"""Container images as input (--image): OCI layouts built offline with umoci
from a busybox rootfs, converted with skopeo (oci: -> docker-archive:) and
flattened with tar; hostile layers crafted with tarfile. Every assertion is
on what the workload saw inside the VM, or on the host paths a hostile layer
aimed at."""
import hashlib
import io
import json
import os
import shutil
import signal
import subprocess
import tarfile
import uuid
from pathlib import Path
from types import SimpleNamespace

import pytest

from conftest import BINARY, parse_probe, timings, wait_for_output

REF = "org.opencontainers.image.ref.name"
EXTRA_APPLETS = ["find", "sort", "md5sum", "xargs", "readlink", "cut", "tr"]
STOP_SCRIPT = ('trap "echo got-usr1; exit 42" USR1; trap "echo got-term; exit 43" TERM; '
               'echo ready; while :; do sleep 0.1; done')
# What the three inputs must agree on: every path, its type/mode, owner and
# link count (of files: overlayfs counts 1 for a directory that several
# layers hold, as docker's overlay2 does), and every file's content.
LIST_SCRIPT = ("cd / && find bin data olddir etc home probe pingish | sort | "
               "while read f; do if [ -d \"$f\" ] && [ ! -L \"$f\" ]; then "
               "stat -c '%n %f %u:%g dir' \"$f\"; else stat -c '%n %f %u:%g %h' \"$f\"; "
               "fi; done; "
               "md5sum data/keep data/added data/owned olddir/new-c probe etc/passwd")


def sh(*argv, **kw):
    return subprocess.run([str(a) for a in argv], check=True, capture_output=True, **kw)


# ---- tar layers and OCI layouts by hand ------------------------------------------

def entry(name, kind="file", data=b"", mode=None, target=None, uid=0, gid=0):
    ti = tarfile.TarInfo(name)
    ti.uid, ti.gid, ti.mtime = uid, gid, 1700000000
    if kind == "file":
        ti.type, ti.size, ti.mode = tarfile.REGTYPE, len(data), mode or 0o644
    elif kind == "dir":
        ti.type, ti.mode = tarfile.DIRTYPE, mode or 0o755
    elif kind == "symlink":
        ti.type, ti.linkname, ti.mode = tarfile.SYMTYPE, target, 0o777
    elif kind == "hardlink":
        ti.type, ti.linkname, ti.mode = tarfile.LNKTYPE, target, mode or 0o644
    elif kind == "fifo":
        ti.type, ti.mode = tarfile.FIFOTYPE, mode or 0o640
    elif kind == "chr":
        ti.type, ti.mode, ti.devmajor, ti.devminor = tarfile.CHRTYPE, 0o666, 1, 3
    return ti, data


def make_tar(entries) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for ti, data in entries:
            tf.addfile(ti, io.BytesIO(data) if ti.type == tarfile.REGTYPE else None)
    return buf.getvalue()


def blob(layout: Path, digest: str) -> bytes:
    return (layout / "blobs/sha256" / digest.split(":", 1)[1]).read_bytes()


def put_blob(layout: Path, data: bytes) -> dict:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    (layout / "blobs/sha256" / digest[7:]).write_bytes(data)
    return {"digest": digest, "size": len(data)}


def manifest_desc(layout: Path, tag: str) -> dict:
    index = json.loads((layout / "index.json").read_text())
    return next(m for m in index["manifests"] if m.get("annotations", {}).get(REF) == tag)


def image_parts(layout: Path, tag: str):
    desc = manifest_desc(layout, tag)
    manifest = json.loads(blob(layout, desc["digest"]))
    config = json.loads(blob(layout, manifest["config"]["digest"]))
    return desc, manifest, config


def append_layer(layout: Path, from_tag: str, new_tag: str, layer: bytes, config=None) -> str:
    """New tag = from_tag plus one uncompressed layer (and config changes)."""
    _, manifest, cfg = image_parts(layout, from_tag)
    layer_desc = put_blob(layout, layer)
    manifest["layers"].append({"mediaType": "application/vnd.oci.image.layer.v1.tar",
                               **layer_desc})
    cfg.setdefault("rootfs", {"type": "layers", "diff_ids": []})["diff_ids"].append(
        layer_desc["digest"])
    cfg.setdefault("config", {}).update(config or {})
    manifest["config"].update(put_blob(layout, json.dumps(cfg).encode()))
    mdesc = put_blob(layout, json.dumps(manifest).encode())
    index = json.loads((layout / "index.json").read_text())
    index["manifests"] = [m for m in index["manifests"]
                          if m.get("annotations", {}).get(REF) != new_tag]
    index["manifests"].append({"mediaType": "application/vnd.oci.image.manifest.v1+json",
                               **mdesc, "annotations": {REF: new_tag}})
    (layout / "index.json").write_text(json.dumps(index))
    return f"oci:{layout}:{new_tag}"


# ---- the test images ------------------------------------------------------------------

@pytest.fixture(scope="session")
def images(tmp_path_factory, busybox_rootfs):
    for tool in ("umoci", "skopeo", "setcap"):
        if not shutil.which(tool):
            pytest.fail(f"{tool} is missing: run scripts/install-deps.sh")
    top = tmp_path_factory.mktemp("oci")
    layout = top / "layout"
    sh("umoci", "init", "--layout", layout)
    sh("umoci", "new", "--image", f"{layout}:base")
    bundle = top / "bundle"
    sh("umoci", "unpack", "--image", f"{layout}:base", bundle)
    root = bundle / "rootfs"
    shutil.copytree(busybox_rootfs, root, symlinks=True, dirs_exist_ok=True)
    for applet in EXTRA_APPLETS:
        (root / "bin" / applet).symlink_to("busybox")
    (root / "data").mkdir()
    (root / "data/keep").write_text("kept\n")
    (root / "data/remove-me").write_text("lower layer\n")
    os.link(root / "data/keep", root / "data/keep-hardlink")
    (root / "data/keep-symlink").symlink_to("keep")
    (root / "data/owned").write_text("owned\n")
    os.chown(root / "data/owned", 1000, 2000)
    os.chmod(root / "data/owned", 0o640)
    (root / "data/setuid").write_bytes(b"#!/bin/sh\n")
    os.chmod(root / "data/setuid", 0o4755)
    (root / "olddir/sub").mkdir(parents=True)
    (root / "olddir/a").write_text("a\n")
    (root / "olddir/sub/b").write_text("b\n")
    (root / "gone").mkdir()
    (root / "gone/x").write_text("x\n")
    shutil.copy("/bin/busybox", root / "pingish")
    sh("setcap", "cap_net_raw+ep", root / "pingish")
    cap = os.getxattr(root / "pingish", "security.capability")
    sh("umoci", "repack", "--image", f"{layout}:base", bundle)

    # Layer 2: a whiteout, an opaque directory (with a file of the same
    # layer listed before the marker, which must survive), a deleted tree.
    append_layer(layout, "base", "merged", make_tar([
        entry("olddir", "dir"),
        entry("olddir/new-c", data=b"c from layer 2\n"),
        entry("olddir/.wh..wh..opq"),
        entry("data", "dir"),
        entry("data/.wh.remove-me"),
        entry("data/added", data=b"added\n"),
        entry(".wh.gone"),
    ]))
    sh("umoci", "config", "--image", f"{layout}:merged", "--tag", "app",
       "--config.entrypoint", "/probe", "--config.entrypoint", "ep-arg",
       "--config.cmd", "cmd-arg1", "--config.cmd", "cmd arg 2",
       "--config.env", "PATH=/bin:/usr/bin", "--config.env", "IMG_VAR=a=b c",
       "--config.env", "OVERRIDE_ME=image",
       "--config.workingdir", "/srv/work", "--config.user", "app",
       "--config.label", "org.example.team=vm", "--config.label", "version=1.2")
    for tag, extra in (("stopper", ["--config.stopsignal", "SIGUSR1"]), ("stopper-default", [])):
        sh("umoci", "config", "--image", f"{layout}:base", "--tag", tag,
           "--config.entrypoint", "/bin/sh", "--config.entrypoint", "-c",
           "--config.cmd", STOP_SCRIPT, *extra)

    docker = top / "app-docker.tar"
    sh("skopeo", "--insecure-policy", "copy", f"oci:{layout}:app",
       f"docker-archive:{docker}:ctrj/app:latest")
    # The flat rootfs: umoci's own merge of the layers, tarred.
    flat = top / "flat"
    sh("umoci", "unpack", "--image", f"{layout}:app", flat)
    tgz, tzst = top / "app-rootfs.tar.gz", top / "app-rootfs.tar.zst"
    tar_opts = ["--xattrs", "--xattrs-include=*", "--numeric-owner", "-C", flat / "rootfs"]
    sh("tar", *tar_opts, "-czf", tgz, ".")
    sh("tar", *tar_opts, "--zstd", "-cf", tzst, ".")
    return SimpleNamespace(layout=layout, cap=cap, docker=docker, tgz=tgz, tzst=tzst,
                           app=f"oci:{layout}:app", merged=f"oci:{layout}:merged",
                           base=f"oci:{layout}:base")


@pytest.fixture
def cache(kernel_ready, tmp_path):
    """A private cache (so "first run unpacks" holds), sharing the kernel,
    its vmlinux, initramfs and modules image with the other tests."""
    c = tmp_path / "cache"
    c.mkdir()
    for sub in ("kernels", "vmlinux", "initramfs", "modules"):
        (kernel_ready / sub).mkdir(exist_ok=True)
        (c / sub).symlink_to(kernel_ready / sub)
    return c


@pytest.fixture
def run(runner, cache):
    def go(image, args=None, options=(), env=None, start=False, timeout=180):
        argv = [str(BINARY), "run"]
        if image:
            argv += ["--image", image]
        argv += ["--memory", "256", "--cpus", "1", "--network", "none", *options]
        if args is not None:
            argv += ["--", *args]
        e = runner.env({"CTR_JAILER_CACHE": str(cache), **(env or {})})
        if start:
            return subprocess.Popen(argv, env=e, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        return subprocess.run(argv, env=e, capture_output=True, timeout=timeout)
    return go


def error_lines(stderr: bytes):
    return [l for l in stderr.decode(errors="replace").splitlines()
            if not l.startswith("ctr-jailer: the KVM here")]


def nothing_half_created(cache: Path):
    leftovers = []
    for folder in ("images", "layers"):
        d = cache / folder
        leftovers += [p for p in d.rglob("*") if p.suffix in (".unpack", ".tmp") or
                      (p.suffix == ".ext4" and (folder == "images" or p.stat().st_size == 0))] \
            if d.exists() else []
    assert not leftovers, leftovers


def env_of(report) -> dict:
    return dict(e.split(b"=", 1) for e in report["env"])


# ---- layers ------------------------------------------------------------------------------

def test_layers_merge_with_whiteouts_and_opaque_dirs(run, images):
    script = ("ls -1a /data; echo ---; ls -1a /olddir; echo ---; "
              "test -e /gone && echo gone-present || echo gone-absent; cat /olddir/new-c; true")
    result = run(images.merged, ["-c", script], options=["--entrypoint", "/bin/sh"])
    assert result.returncode == 0, result.stderr
    data, olddir, rest = result.stdout.decode().split("---\n")
    assert data.split() == [".", "..", "added", "keep", "keep-hardlink", "keep-symlink",
                            "owned", "setuid"]
    assert olddir.split() == [".", "..", "new-c"]     # opaque: a and sub/ hidden, new-c kept
    assert rest.split("\n")[:2] == ["gone-absent", "c from layer 2"]
    # negative control: the base layer alone has what layer 2 deletes
    result = run(images.base, ["-c", script], options=["--entrypoint", "/bin/sh"])
    assert result.returncode == 0, result.stderr
    data, olddir, rest = result.stdout.decode().split("---\n")
    assert "remove-me" in data.split() and "added" not in data.split()
    assert olddir.split() == [".", "..", "a", "sub"]
    assert rest.startswith("gone-present")


def test_metadata_survives_hardlinks_symlinks_owner_mode(run, images):
    script = ("stat -c '%n %i %h' /data/keep /data/keep-hardlink; readlink /data/keep-symlink; "
              "stat -c '%n %u:%g %a' /data/owned /data/setuid")
    result = run(images.app, ["-c", script], options=["--entrypoint", "/bin/sh", "-u", "0"])
    assert result.returncode == 0, result.stderr
    lines = result.stdout.decode().splitlines()
    keep, hardlink = lines[0].split(), lines[1].split()
    assert keep[1] == hardlink[1] and keep[2] == hardlink[2] == "2"   # one inode, two names
    assert lines[2] == "keep"
    assert lines[3] == "/data/owned 1000:2000 640"
    assert lines[4] == "/data/setuid 0:0 4755"


@pytest.mark.parametrize("kind", ["oci", "docker-archive", "tar"])
def test_file_capability_survives(run, images, kind):
    image = {"oci": images.app, "docker-archive": f"docker-archive:{images.docker}",
             "tar": f"tar:{images.tgz}"}[kind]
    result = run(image, ["--cap", "/pingish", "--cap", "/bin/busybox"],
                 options=["--entrypoint", "/probe", "-u", "0"])
    assert result.returncode == 0, result.stderr
    caps = [l.split()[1:] for l in result.stdout.decode().splitlines() if l.startswith("cap ")]
    assert caps == [["/pingish", images.cap.hex()], ["/bin/busybox", "-"]]
    assert images.cap.hex().startswith("01000002")     # the control: cap_net_raw, effective
    assert images.cap[4:8] == (1 << 13).to_bytes(4, "little")


# ---- the image's config -------------------------------------------------------------------

def test_config_reaches_the_workload_exactly(run, images):
    result = run(images.app)
    assert result.returncode == 0, result.stderr
    report = parse_probe(result.stdout)
    assert report["argv"] == [b"/probe", b"ep-arg", b"cmd-arg1", b"cmd arg 2"]
    assert env_of(report) == {b"PATH": b"/bin:/usr/bin", b"IMG_VAR": b"a=b c",
                              b"OVERRIDE_ME": b"image", b"HOME": b"/home/app"}
    assert (report["uid"], report["gid"]) == ("1000", "1000")
    assert sorted(report["group"]) == ["1000", "2000"]       # the supplementary group
    assert report["cwd"] == "/srv/work"


def test_command_line_layers_on_top_of_the_config(run, images, tmp_path):
    env_file = tmp_path / "env"
    env_file.write_text("FROM_FILE=file\nOVERRIDE_ME=file\n")
    result = run(images.app, options=["--env-passthrough", "--env-file", str(env_file),
                                      "-e", "OVERRIDE_ME=cli"],
                 env={"PASSED": "through"})
    assert result.returncode == 0, result.stderr
    env = env_of(parse_probe(result.stdout))
    assert env[b"OVERRIDE_ME"] == b"cli"
    assert env[b"FROM_FILE"] == b"file"
    assert env[b"PASSED"] == b"through"
    assert env[b"IMG_VAR"] == b"a=b c" and env[b"PATH"] == b"/bin:/usr/bin"


@pytest.mark.parametrize("options,args,argv", [
    ([], ["x", "y z"], [b"/probe", b"ep-arg", b"x", b"y z"]),     # args replace Cmd
    (["--entrypoint", "/probe"], None, [b"/probe"]),              # --entrypoint drops Cmd
    (["--entrypoint", "/probe"], ["n"], [b"/probe", b"n"]),
    (["--entrypoint", ""], ["/probe", "z"], [b"/probe", b"z"]),   # '' clears it
])
def test_entrypoint_and_arguments_override(run, images, options, args, argv):
    result = run(images.app, args, options=options)
    assert result.returncode == 0, result.stderr
    report = parse_probe(result.stdout)
    assert report["argv"] == argv
    assert report["uid"] == "1000"            # the rest of the config still holds


def test_user_and_workdir_flags_win_and_env_names_the_image(run, images):
    # CTR_JAILER_IMAGE instead of --image
    result = run(None, options=["-u", "0", "-w", "/"], env={"CTR_JAILER_IMAGE": images.app})
    assert result.returncode == 0, result.stderr
    report = parse_probe(result.stdout)
    assert (report["uid"], report["cwd"]) == ("0", "/")
    assert report["argv"][0] == b"/probe"


@pytest.mark.parametrize("tag,out,code", [("stopper", b"got-usr1", 42),
                                          ("stopper-default", b"got-term", 43)])
def test_stop_signal_from_the_image(run, images, tag, out, code):
    proc = run(f"oci:{images.layout}:{tag}", start=True)
    wait_for_output(proc, b"ready")
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=120)
    assert out in stdout, (stdout, stderr)
    assert proc.returncode == code, stderr


# ---- the same image three ways, and the cache -----------------------------------------------

def test_oci_docker_archive_and_tar_give_the_same_result(run, images):
    listings = {}
    for name, image in [("oci", images.app), ("docker", f"docker-archive:{images.docker}"),
                        ("tar.gz", f"tar:{images.tgz}"), ("tar.zst", f"tar:{images.tzst}")]:
        result = run(image, ["-c", LIST_SCRIPT], options=["--entrypoint", "/bin/sh", "-u", "0"])
        assert result.returncode == 0, (name, result.stderr)
        listings[name] = result.stdout
    assert b"\ndata/keep-hardlink 81a4 0:0 2\n" in listings["oci"]
    assert b"\npingish 81ed 0:0 1\n" in listings["oci"]
    assert b"remove-me" not in listings["oci"]
    for name in ("docker", "tar.gz", "tar.zst"):
        assert listings[name] == listings["oci"], name
    # and the config: oci and docker-archive run the same thing the same way
    reports = []
    for image in (images.app, f"docker-archive:{images.docker}"):
        result = run(image)
        assert result.returncode == 0, result.stderr
        report = parse_probe(result.stdout)
        report.pop("pid", None)
        reports.append(report)
    assert reports[0] == reports[1]


def test_second_run_does_not_unpack(run, images, cache):
    for image in (images.app, f"docker-archive:{images.docker}", f"tar:{images.tgz}"):
        first = run(image, ["/bin/true"], options=["--timings", "--entrypoint", ""])
        assert first.returncode == 0, first.stderr
        t = timings(first.stderr)
        # the docker-archive is the oci image saved by skopeo: the same
        # layers (diff_ids), whose images the oci run built
        shared = image.startswith("docker-archive:")
        assert t["image_unpacked"] is not shared and t["base_image_built"] is not shared, image
        second = run(image, ["/bin/true"], options=["--timings", "--entrypoint", ""])
        assert second.returncode == 0, second.stderr
        t = timings(second.stderr)
        assert t["image_unpacked"] is False and t["base_image_built"] is False, image
    built = sorted(p.name.split("-")[0] for p in (cache / "images").rglob("*.ext4"))
    assert built == ["tar"]                    # oci and docker-archive: one image per layer
    _, manifest, _ = image_parts(images.layout, "app")
    assert len(list((cache / "layers").glob("*.ext4"))) == len(manifest["layers"])
    assert not list(cache.rglob("*.unpack"))


# ---- hostile layers ------------------------------------------------------------------------------

@pytest.fixture
def layout_copy(images, tmp_path):
    copy = tmp_path / "layout"
    shutil.copytree(images.layout, copy)
    return copy


def sha(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.mark.parametrize("via", ["oci", "tar"])
def test_dotdot_entry_is_refused(run, layout_copy, cache, tmp_path, via):
    name = f"ctrj-escape-{uuid.uuid4().hex}"
    layer = make_tar([entry("ok-file", data=b"fine"),
                      entry(f"../../../../../../../../../../tmp/{name}", data=b"escaped"),
                      entry(f"../{name}", data=b"escaped")])
    if via == "oci":
        image = append_layer(layout_copy, "base", "evil", layer)
    else:
        (tmp_path / "evil.tar").write_bytes(layer)
        image = f"tar:{tmp_path / 'evil.tar'}"
    result = run(image, ["/bin/true"])
    lines = error_lines(result.stderr)
    assert result.returncode == 125, result.stderr
    assert len(lines) == 1, lines
    assert "'..'" in lines[0] and name in lines[0]
    assert not Path("/tmp", name).exists()
    assert not [p for p in Path("/").glob(f"*/{name}")]
    assert not list(tmp_path.rglob(f"*{name}*"))
    nothing_half_created(cache)


def test_symlink_out_of_the_root_is_followed_inside_it(run, layout_copy):
    name = f"ctrj-evil-{uuid.uuid4().hex}"
    image = append_layer(layout_copy, "base", "evil", make_tar([
        entry("etclink", "symlink", target="/etc"),
        entry(f"etclink/{name}", data=b"through-absolute-symlink\n"),
        entry("up", "symlink", target="../../../../../../../../../../home"),
        entry(f"up/{name}", data=b"through-relative-symlink\n"),
    ]))
    try:
        result = run(image, ["-c", f"cat /etc/{name} /home/{name}; readlink /etclink"],
                     options=["--entrypoint", "/bin/sh"])
        assert result.returncode == 0, result.stderr
        # contained: the writes landed in the image's /etc and /home ...
        assert result.stdout.split(b"\n")[:3] == [b"through-absolute-symlink",
                                                  b"through-relative-symlink", b"/etc"]
    finally:
        leaked = [p for p in (Path("/etc", name), Path("/home", name)) if p.exists()]
        for p in leaked:
            p.unlink()
    # ... and not in the host's
    assert not leaked


def test_hard_link_to_outside_is_refused(run, layout_copy, cache):
    image = append_layer(layout_copy, "base", "evil", make_tar([
        entry("stolen", "hardlink", target="../../../../../../../../../../etc/passwd"),
    ]))
    before = sha("/etc/passwd")
    result = run(image, ["/bin/true"])
    lines = error_lines(result.stderr)
    assert result.returncode == 125, result.stderr
    assert len(lines) == 1 and "hard link" in lines[0] and "stolen" in lines[0], lines
    assert sha("/etc/passwd") == before
    nothing_half_created(cache)


def test_hard_link_through_a_symlink_stays_inside(run, layout_copy):
    image = append_layer(layout_copy, "base", "evil", make_tar([
        entry("etclink", "symlink", target="/etc"),
        entry("stolen", "hardlink", target="etclink/passwd"),
        entry("stolen-abs", "hardlink", target="/etc/group"),
        entry("stolen", data=b"overwritten\n"),   # must not write through the link
    ]))
    before = {p: sha(p) for p in ("/etc/passwd", "/etc/group")}
    result = run(image, ["-c", "cat /stolen; cat /stolen-abs; cat /etc/passwd"],
                 options=["--entrypoint", "/bin/sh"])
    assert result.returncode == 0, result.stderr
    out = result.stdout.decode()
    assert out.startswith("overwritten\nroot:x:0:\napp:x:1000:\nextra:x:2000:app\n")
    assert "app:x:1000:1000:app user" in out            # the image's passwd, intact
    assert {p: sha(p) for p in before} == before        # the host's, untouched


def test_device_nodes_are_skipped_with_a_notice(run, layout_copy):
    image = append_layer(layout_copy, "base", "devices", make_tar([
        entry("devnode", "chr"),
        entry("fifo", "fifo"),
    ]))
    result = run(image, ["-c", "test -e /devnode && echo present || echo absent; "
                         "test -p /fifo && echo fifo"], options=["--entrypoint", "/bin/sh"])
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[:2] == [b"absent", b"fifo"]
    assert b"device node" in result.stderr


@pytest.mark.parametrize("what", ["layer", "config", "manifest"])
def test_blob_not_matching_its_digest_is_refused(run, layout_copy, cache, what):
    desc, manifest, _ = image_parts(layout_copy, "app")
    digest = {"layer": manifest["layers"][0]["digest"], "config": manifest["config"]["digest"],
              "manifest": desc["digest"]}[what]
    path = layout_copy / "blobs/sha256" / digest[7:]
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01            # same size, one bit off
    path.chmod(0o644)
    path.write_bytes(bytes(data))
    result = run(f"oci:{layout_copy}:app", ["/bin/true"])
    lines = error_lines(result.stderr)
    assert result.returncode == 125, result.stderr
    assert len(lines) == 1, lines
    assert "does not match its digest" in lines[0] and digest in lines[0]
    nothing_half_created(cache)


# ---- inspect and bad input ---------------------------------------------------------------------

def inspect(image, env=None):
    result = subprocess.run([str(BINARY), "inspect", image], capture_output=True,
                            env={**os.environ, **(env or {})}, timeout=60)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_inspect_shows_what_would_run(images, tmp_path):
    env = {"CTR_JAILER_CACHE": str(tmp_path / "cache")}
    app = inspect(images.app, env)
    assert app["digest"] == manifest_desc(images.layout, "app")["digest"]
    assert app["entrypoint"] == ["/probe", "ep-arg"]
    assert app["cmd"] == ["cmd-arg1", "cmd arg 2"]
    assert app["command"] == ["/probe", "ep-arg", "cmd-arg1", "cmd arg 2"]
    assert app["env"] == ["PATH=/bin:/usr/bin", "IMG_VAR=a=b c", "OVERRIDE_ME=image"]
    assert (app["user"], app["workdir"], app["stop_signal"]) == ("app", "/srv/work", None)
    assert app["labels"] == {"org.example.team": "vm", "version": "1.2"}
    assert app["layers"] == 2
    stopper = inspect(f"oci:{images.layout}:stopper", env)
    assert (stopper["stop_signal"], stopper["stop_signal_number"]) == ("SIGUSR1", 10)
    docker = inspect(f"docker-archive:{images.docker}", env)
    for key in ("entrypoint", "cmd", "env", "user", "workdir", "labels", "config_digest"):
        assert docker[key] == app[key], key
    assert docker["digest"] == app["config_digest"]     # docker's image ID
    flat = inspect(f"tar:{images.tgz}", env)
    assert flat["digest"] == "sha256:" + sha(images.tgz)
    assert flat["command"] is None and flat["entrypoint"] is None


@pytest.mark.parametrize("options,args,needle", [
    (["--image", "Bogus:x"], ["/bin/true"], "oci:DIR"),
    (["--image", "oci:/no/such/layout"], ["/bin/true"], "/no/such/layout"),
    (["--image", "tar:/no/such.tar"], ["/bin/true"], "/no/such.tar"),
    (["--image", "{layout}:no-such-tag"], ["/bin/true"], "tags: "),
    (["--image", "{layout}:base"], None, "no command"),
    (["--image", "{layout}:app", "--rootfs", "/"], ["/bin/true"], "not both"),
])
def test_bad_image_input(run, images, cache, options, args, needle):
    options = [o.replace("{layout}", f"oci:{images.layout}") for o in options]
    result = run(None, args, options=options)
    lines = error_lines(result.stderr)
    assert result.returncode == 125, result.stderr
    assert len(lines) == 1 and needle in lines[0], lines
    nothing_half_created(cache)
