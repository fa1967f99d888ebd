# SPDX-License-Identifier: Apache-2.0
"""Registry pull and the local image store: Debian's docker-registry (plain
HTTP, then TLS with a test CA, then htpasswd auth) in a network namespace
the test creates, fed by skopeo from OCI layouts built here; a tiny fake
registry (python http.server) for what a real one will not do (a tampered
blob, a connection dropped halfway). ctr-jailer pulls from inside the
namespace (nsenter --net); runs use the store from the host's. Assertions
are on what the workload printed from inside the VM, on the store's files
and on the fake registry's own log."""
import base64
import fcntl
import gzip
import hashlib
import io
import json
import os
import re
import shutil
import signal
import subprocess
import tarfile
import time
import uuid
from pathlib import Path

import pytest

from conftest import BINARY, CACHE

REF = "org.opencontainers.image.ref.name"
PORT = 5000
FAKE_PORT = 5001


def sh(*argv, check=True, **kw):
    return subprocess.run([str(a) for a in argv], check=check, capture_output=True, **kw)


# ---- images built by hand ------------------------------------------------------

def tar_of(files: dict, root: Path = None) -> bytes:
    """A layer: the tree at root (if any) plus files {path: bytes}."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        if root:
            tf.add(str(root), arcname=".")
        for path, data in files.items():
            ti = tarfile.TarInfo(path.lstrip("/"))
            ti.size, ti.mode, ti.mtime = len(data), 0o644, 1700000000
            tf.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


class Layout:
    """An OCI image layout written with json and hashlib."""

    def __init__(self, path: Path):
        self.path = path
        (path / "blobs/sha256").mkdir(parents=True)
        (path / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
        self.index = {"schemaVersion": 2, "manifests": []}
        self.save()

    def save(self):
        (self.path / "index.json").write_text(json.dumps(self.index))

    def put(self, data: bytes, media_type: str) -> dict:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        (self.path / "blobs/sha256" / digest[7:]).write_bytes(data)
        return {"mediaType": media_type, "digest": digest, "size": len(data)}

    def image(self, tag, layers, env=(), arch="amd64"):
        """layers: uncompressed tars, stored gzipped. Returns the manifest's
        descriptor."""
        descs, diff_ids = [], []
        for raw in layers:
            diff_ids.append("sha256:" + hashlib.sha256(raw).hexdigest())
            descs.append(self.put(gzip.compress(raw, mtime=0),
                                  "application/vnd.oci.image.layer.v1.tar+gzip"))
        config = {"architecture": arch, "os": "linux",
                  "config": {"Env": ["PATH=/bin", *env], "Cmd": ["/bin/sh"]},
                  "rootfs": {"type": "layers", "diff_ids": diff_ids}}
        cdesc = self.put(json.dumps(config).encode(), "application/vnd.oci.image.config.v1+json")
        manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "config": cdesc, "layers": descs}
        mdesc = self.put(json.dumps(manifest).encode(),
                         "application/vnd.oci.image.manifest.v1+json")
        if tag:
            self.tag(tag, mdesc)
        return mdesc

    def tag(self, tag, desc):
        self.index["manifests"] = [m for m in self.index["manifests"]
                                   if m.get("annotations", {}).get(REF) != tag]
        self.index["manifests"].append({**desc, "annotations": {REF: tag}})
        self.save()

    def multi(self, tag, per_arch: dict):
        """An image index over {arch: manifest descriptor}."""
        idx = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
               "manifests": [{**d, "platform": {"os": "linux", "architecture": a}}
                             for a, d in per_arch.items()]}
        d = self.put(json.dumps(idx).encode(), "application/vnd.oci.image.index.v1+json")
        self.tag(tag, d)
        return d


@pytest.fixture(scope="module")
def layout(tmp_path_factory, busybox_rootfs):
    top = tmp_path_factory.mktemp("reg-layout")
    lay = Layout(top / "layout")
    base = tar_of({}, busybox_rootfs)
    lay.base_layer = base
    lay.app = lay.image("app", [base, tar_of({"/file": b"hello from the registry image\n"})],
                        env=["GREETING=from-config"])
    lay.other = lay.image("other", [base, tar_of({"/file": b"the other image\n"})])
    arm = lay.image(None, [base, tar_of({"/file": b"arm64 image\n"})], arch="arm64")
    amd = lay.image(None, [base, tar_of({"/file": b"amd64 image\n"})])
    lay.multi("multi", {"arm64": arm, "amd64": amd})
    lay.arm, lay.amd = arm, amd
    yield lay
    shutil.rmtree(top, ignore_errors=True)


# ---- the registry's world ----------------------------------------------------------

class World:
    """A network namespace with loopback up, a docker-registry in it."""

    def __init__(self, top: Path):
        self.top = top
        self.ns = "cjreg-" + uuid.uuid4().hex[:8]
        sh("ip", "netns", "add", self.ns)
        sh("ip", "-n", self.ns, "link", "set", "lo", "up")
        self.procs = []
        self.cache = top / "cache"
        self.cache.mkdir()
        for part in ("kernels", "modules", "vmlinux"):  # the shared kernel, nothing else
            if (CACHE / part).exists():
                (self.cache / part).symlink_to(CACHE / part)
        self.run_dir = top / "run"
        self.home = top / "home"
        self.home.mkdir()

    def nsexec(self):
        return ["nsenter", f"--net=/var/run/netns/{self.ns}"]

    def env(self, extra=None):
        return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.home),
                "CTR_JAILER_CACHE": str(self.cache), "CTR_JAILER_RUN_DIR": str(self.run_dir),
                **(extra or {})}

    def cj(self, *args, env=None, netns=True, timeout=300):
        argv = [*(self.nsexec() if netns else []), str(BINARY), *map(str, args)]
        return subprocess.run(argv, env=self.env(env), capture_output=True, timeout=timeout)

    def registry(self, tls=None, htpasswd=None, port=PORT):
        """Start docker-registry on 127.0.0.1:port; returns its address."""
        data = self.top / f"registry-{port}"
        data.mkdir(exist_ok=True)
        cfg = ["version: 0.1", "log:", "  level: warn", "storage:", "  filesystem:",
               f"    rootdirectory: {data}", "  delete:", "    enabled: true", "http:",
               f"  addr: 127.0.0.1:{port}"]
        if tls:
            cfg += ["  tls:", f"    certificate: {tls[0]}", f"    key: {tls[1]}"]
        if htpasswd:
            cfg += ["auth:", "  htpasswd:", "    realm: test", f"    path: {htpasswd}"]
        conf = self.top / f"registry-{port}.yml"
        conf.write_text("\n".join(cfg) + "\n")
        p = subprocess.Popen([*self.nsexec(), "docker-registry", "serve", str(conf)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.procs.append(p)
        self.wait_port(port)
        return f"127.0.0.1:{port}"

    def wait_port(self, port):
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if sh(*self.nsexec(), "bash", "-c", f"exec 3<>/dev/tcp/127.0.0.1/{port}",
                  check=False).returncode == 0:
                return
            time.sleep(0.2)
        pytest.fail(f"nothing listens on port {port} in {self.ns}")

    def push(self, layout: Path, tag: str, dest: str, extra=()):
        sh(*self.nsexec(), "skopeo", "copy", "--all", *extra, f"oci:{layout}:{tag}",
           f"docker://{dest}", "--dest-tls-verify=false")

    def store_blobs(self):
        d = self.cache / "store/blobs/sha256"
        return {p.name: p.stat().st_size for p in d.iterdir()} if d.exists() else {}

    def close(self):
        for p in self.procs:
            p.kill()
            p.wait()
        sh("ip", "netns", "del", self.ns, check=False)


@pytest.fixture
def world(tmp_path, kernel_ready):
    for tool in ("docker-registry", "skopeo", "nsenter", "openssl", "htpasswd"):
        if not shutil.which(tool):
            pytest.fail(f"{tool} is missing: run scripts/install-deps.sh")
    w = World(tmp_path)
    yield w
    w.close()
    leftovers = [p for p in w.run_dir.iterdir() if not p.name.startswith(".")] \
        if w.run_dir.exists() else []
    assert not leftovers, f"run directory not cleaned: {leftovers}"


def run_vm(world, image, *cmd, options=()):
    return world.cj("run", "--memory", "256", "--cpus", "1", "--network", "none", *options,
                    image, *cmd, netns=False)


# ---- the cases ----------------------------------------------------------------------

def test_pull_images_run(world, layout):
    """Plain HTTP with --insecure-registry: pull, list, run by name (one boot)."""
    reg = world.registry()
    world.push(layout.path, "app", f"{reg}/test/app:v1")
    refused = world.cj("pull", f"{reg}/test/app:v1")
    assert refused.returncode == 125
    assert b"--insecure-registry" in refused.stderr, refused.stderr
    r = world.cj("pull", "--insecure-registry", reg, f"{reg}/test/app:v1")
    assert r.returncode == 0, r.stderr
    digest, name = r.stdout.decode().split()
    assert name == f"{reg}/test/app:v1"
    assert digest == layout.app["digest"]
    listed = [json.loads(l) for l in world.cj("images", "--format", "json").stdout.splitlines()]
    assert [(i["Name"], i["Digest"]) for i in listed] == [(name, digest)]
    # the store is an OCI layout: every blob's name is its content's digest
    for hexd in world.store_blobs():
        data = (world.cache / "store/blobs/sha256" / hexd).read_bytes()
        assert hashlib.sha256(data).hexdigest() == hexd
    run = run_vm(world, name, "sh", "-c", "cat /file; echo \"GREETING=$GREETING\"")
    assert run.returncode == 0, run.stderr
    assert b"hello from the registry image" in run.stdout
    assert b"GREETING=from-config" in run.stdout


def test_pull_by_digest_and_platform(world, layout):
    reg = world.registry()
    world.push(layout.path, "multi", f"{reg}/test/multi:latest")
    ins = ("--insecure-registry", reg)
    r = world.cj("pull", *ins, f"{reg}/test/multi")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split()[0].decode() == layout.amd["digest"]  # the amd64 image, by default
    r = world.cj("pull", *ins, "--platform", "linux/arm64", f"{reg}/test/multi:latest")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split()[0].decode() == layout.arm["digest"]
    missing = world.cj("pull", *ins, "--platform", "linux/s390x", f"{reg}/test/multi:latest")
    assert missing.returncode == 125 and b"linux/s390x" in missing.stderr
    r = world.cj("pull", *ins, f"{reg}/test/multi@{layout.amd['digest']}")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split()[1].decode() == f"{reg}/test/multi@{layout.amd['digest']}"
    names = {json.loads(l)["Name"] for l in world.cj("images", "--format", "json").stdout.splitlines()}
    assert f"{reg}/test/multi@{layout.amd['digest']}" in names


def make_tls(top: Path):
    """A CA and a server certificate for 127.0.0.1 signed by it."""
    ca_key, ca, key, csr, crt = (top / n for n in ("ca.key", "ca.crt", "srv.key", "srv.csr",
                                                   "srv.crt"))
    sh("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", ca_key, "-out", ca,
       "-days", "2", "-subj", "/CN=ctr-jailer test CA")
    sh("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr, "-subj",
       "/CN=127.0.0.1")
    ext = top / "ext.cnf"
    ext.write_text("subjectAltName=IP:127.0.0.1\n")
    sh("openssl", "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial",
       "-out", crt, "-days", "2", "-extfile", ext)
    return ca, crt, key


def test_tls_with_cert_dir(world, layout):
    ca, crt, key = make_tls(world.top)
    reg = world.registry(tls=(crt, key))
    world.push(layout.path, "app", f"{reg}/test/app:v1")
    refused = world.cj("pull", f"{reg}/test/app:v1")
    assert refused.returncode == 125
    err = refused.stderr.decode()
    assert "--cert-dir" in err and err.count("\n") == 1, err
    certs = world.top / "certs.d" / reg
    certs.mkdir(parents=True)
    shutil.copy(ca, certs / "ca.crt")
    r = world.cj("pull", "--cert-dir", world.top / "certs.d", f"{reg}/test/app:v1")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split()[0].decode() == layout.app["digest"]


def test_htpasswd_auth(world, layout):
    ca, crt, key = make_tls(world.top)  # docker-registry's htpasswd auth wants TLS
    pw = world.top / "htpasswd"
    sh("htpasswd", "-Bbc", pw, "alice", "s3cret")
    reg = world.registry(tls=(crt, key), htpasswd=pw)
    world.push(layout.path, "app", f"{reg}/test/app:v1", extra=("--dest-creds", "alice:s3cret"))
    (world.top / "certs").mkdir()
    shutil.copy(ca, world.top / "certs/ca.crt")
    base = ("pull", "--cert-dir", world.top / "certs")
    none = world.cj(*base, f"{reg}/test/app:v1")
    assert none.returncode == 125, none.stderr.decode()[-3000:]
    assert b"--creds" in none.stderr and b"docker login" in none.stderr, none.stderr
    wrong = world.cj(*base, "--creds", "alice:nope", f"{reg}/test/app:v1")
    assert wrong.returncode == 125
    assert b"refused the credentials of user 'alice'" in wrong.stderr, wrong.stderr
    (world.home / ".docker").mkdir()
    (world.home / ".docker/config.json").write_text(json.dumps(
        {"auths": {reg: {"auth": base64.b64encode(b"alice:s3cret").decode()}}}))
    ok = world.cj(*base, f"{reg}/test/app:v1")
    assert ok.returncode == 0, ok.stderr
    env_ok = world.cj(*base, f"{reg}/test/app:v1", env={"HOME": "/nonexistent",
                                                       "CTR_JAILER_REGISTRY_AUTH": f"other.example=bob:x,{reg}=alice:s3cret"})
    assert env_ok.returncode == 0, env_ok.stderr
    bare = world.cj(*base, f"{reg}/test/app:v1", env={"HOME": "/nonexistent",
                                                     "CTR_JAILER_REGISTRY_AUTH": "alice:s3cret"})
    assert bare.returncode == 125 and b"HOST=USER:PASSWORD" in bare.stderr, bare.stderr


def test_rmi_keeps_shared_blobs(world, layout):
    reg = world.registry()
    world.push(layout.path, "app", f"{reg}/test/app:v1")
    world.push(layout.path, "other", f"{reg}/test/other:v1")
    ins = ("--insecure-registry", reg)
    assert world.cj("pull", *ins, f"{reg}/test/app:v1").returncode == 0
    before_one = world.store_blobs()
    assert world.cj("pull", *ins, f"{reg}/test/other:v1").returncode == 0
    both = world.store_blobs()
    base_hex = hashlib.sha256(gzip.compress(layout.base_layer, mtime=0)).hexdigest()
    assert base_hex in before_one and base_hex in both
    # the shared base layer is stored once: the second image added only its own blobs
    assert len(both) - len(before_one) == 3  # manifest, config, its own layer
    assert world.cj("tag", f"{reg}/test/app:v1", "mine/app:copy").returncode == 0
    r = world.cj("rmi", f"{reg}/test/app:v1")
    assert r.returncode == 0, r.stderr
    assert world.store_blobs() == both  # still named mine/app:copy
    r = world.cj("rmi", "docker.io/mine/app:copy")
    assert r.returncode == 0, r.stderr
    after = world.store_blobs()
    assert base_hex in after  # shared with "other"
    gone = set(both) - set(after)
    assert gone == set(before_one) - set(after) and len(gone) == 3
    assert layout.app["digest"][7:] in gone
    missing = world.cj("rmi", "docker.io/mine/app:copy")
    assert missing.returncode == 1 and b"not stored" in missing.stderr


def fake_registry(world, layout, mode):
    log = world.top / f"fake-{mode}.log"
    log.write_text("")
    p = subprocess.Popen([*world.nsexec(), "python3", Path(__file__).parent / "fake_registry.py",
                          layout.path, str(FAKE_PORT), mode, log],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    world.procs.append(p)
    world.wait_port(FAKE_PORT)
    return f"127.0.0.1:{FAKE_PORT}", log


def partials(world):
    d = world.cache / "store/blobs/sha256"
    return sorted(p.name for p in d.glob("*.partial")) if d.exists() else []


@pytest.mark.parametrize("mode,words", [("tamper", b"does not match its digest"),
                                        ("oversize", b"is larger than")])
def test_bad_blob_refused(world, layout, mode, words):
    reg, _ = fake_registry(world, layout, mode)
    r = world.cj("pull", "-q", "--insecure-registry", reg, f"{reg}/test/app:app")
    assert r.returncode == 125
    assert words in r.stderr and b"refused" in r.stderr, r.stderr
    assert r.stderr.count(b"\n") == 1, r.stderr
    bad = re.search(rb"blob sha256:([0-9a-f]{64})", r.stderr).group(1).decode()
    assert bad + ".partial" not in partials(world)  # the refused download is gone
    # (a layer still downloading when that one failed stays resumable)
    layers = {l["digest"][7:] for l in json.loads(
        (layout.path / "blobs/sha256" / layout.app["digest"][7:]).read_bytes())["layers"]}
    assert not layers & set(world.store_blobs())
    listed = world.cj("images", "-q")
    assert listed.stdout == b""  # nothing was named


def test_resumed_download(world, layout):
    reg, log = fake_registry(world, layout, "drop")
    r = world.cj("pull", "--insecure-registry", reg, f"{reg}/test/app:app")
    assert r.returncode == 0, r.stderr
    requests = [l.split() for l in log.read_text().splitlines()]
    layers = [l["digest"] for l in json.loads(
        (layout.path / "blobs/sha256" / layout.app["digest"][7:]).read_bytes())["layers"]]
    for digest in layers:
        mine = [rng for d, rng in requests if d == digest]
        size = len((layout.path / "blobs/sha256" / digest[7:]).read_bytes())
        # the whole blob first, cut halfway; then the rest from where it broke
        assert mine == ["-", f"bytes={size // 2}-"], (digest, mine)
        assert world.store_blobs()[digest[7:]] == size
    assert partials(world) == []


def test_load_archives_and_inspect(world, layout):
    """docker-archive and OCI archive (skopeo) into the store, named from
    the archive; inspect and images on the stored names."""
    darch = world.top / "app-docker.tar"
    sh("skopeo", "copy", f"oci:{layout.path}:app", f"docker-archive:{darch}:test/loaded:v2")
    r = world.cj("load", "-i", darch, netns=False)
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"Loaded image: docker.io/test/loaded:v2\n"
    oarch = world.top / "app-oci.tar"
    sh("skopeo", "copy", f"oci:{layout.path}:other", f"oci-archive:{oarch}:example.org/o/other:v3")
    r = world.cj("load", "-i", oarch, netns=False)
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"Loaded image: example.org/o/other:v3\n"
    names = {json.loads(l)["Name"]
             for l in world.cj("images", "--format", "json", netns=False).stdout.splitlines()}
    assert names == {"docker.io/test/loaded:v2", "example.org/o/other:v3"}
    info = json.loads(world.cj("inspect", "test/loaded:v2", netns=False).stdout)
    assert "GREETING=from-config" in info["env"] and info["layers"] == 2
    # the store is an OCI layout that oci: opens, by the full name
    direct = world.cj("inspect", f"oci:{world.cache}/store:docker.io/test/loaded:v2", netns=False)
    assert direct.returncode == 0, direct.stderr
    assert json.loads(direct.stdout)["digest"] == info["digest"]
    # nothing but what the two images use is left in the store
    used = set()
    for name in names:
        d = json.loads(world.cj("inspect", name, netns=False).stdout)["digest"]
        used.add(d[7:])
        man = json.loads((world.cache / "store/blobs/sha256" / d[7:]).read_bytes())
        used |= {man["config"]["digest"][7:], *(l["digest"][7:] for l in man["layers"])}
    assert set(world.store_blobs()) == used
    bad = world.top / "bad.tar"
    with tarfile.open(bad, "w") as tf:
        ti = tarfile.TarInfo("hello.txt")
        ti.size = 2
        tf.addfile(ti, io.BytesIO(b"hi"))
    r = world.cj("load", "-i", bad, netns=False)
    assert r.returncode == 125 and b"neither a docker-archive" in r.stderr
    assert set(world.store_blobs()) == used


def test_run_image_operand_and_rmi_in_use(world, layout):
    """`run IMAGE CMD` by stored name (docker style, detached); rmi refuses
    while that run lives, and removes every blob once it ended."""
    darch = world.top / "app.tar"
    sh("skopeo", "copy", f"oci:{layout.path}:app", f"docker-archive:{darch}:app:latest")
    assert world.cj("load", "-i", darch, netns=False).returncode == 0
    p = subprocess.Popen([str(BINARY), "run", "--memory", "256", "--cpus", "1", "--network",
                          "none", "-d", "--name", "holder", "app", "sleep", "600"],
                         env=world.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = p.communicate(timeout=300)
    assert p.returncode == 0, err
    try:
        r = world.cj("rmi", "app", netns=False)
        assert r.returncode == 1 and b"used by a running VM" in r.stderr, r.stderr
        assert world.cj("images", "-q", netns=False).stdout.strip()
        # -f forces; a second name of the image goes, its blobs stay (still "app")
        assert world.cj("tag", "app", "app:second", netns=False).returncode == 0
        before = world.store_blobs()
        assert world.cj("rmi", "app:second", netns=False).returncode == 1
        forced = world.cj("rmi", "-f", "app:second", netns=False)
        assert forced.returncode == 0, forced.stderr
        assert world.store_blobs() == before
    finally:
        world.cj("stop", "holder", netns=False, timeout=120)
        world.cj("rm", "holder", netns=False)
    r = world.cj("rmi", "app", netns=False)
    assert r.returncode == 0, r.stderr
    assert world.store_blobs() == {}


def interrupt_mid_download(world, argv):
    """Start argv, SIGINT it once a blob has 64 KiB on disk: (process, stderr)."""
    p = subprocess.Popen(argv, env=world.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        sizes = [(world.cache / "store/blobs/sha256" / n).stat().st_size
                 for n in partials(world)]
        if sizes and max(sizes) > 65536:
            break
        time.sleep(0.05)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=10)
    return p, err


def test_interrupted_pull_resumes(world, layout):
    """Ctrl-C mid-download: exit 125 at once, no lock held, no temporary
    file, the partial blob kept; the next pull asks only for the rest."""
    reg, log = fake_registry(world, layout, "slow")
    argv = [*world.nsexec(), str(BINARY), "pull", "--insecure-registry", reg,
            f"{reg}/test/app:app"]
    p, err = interrupt_mid_download(world, argv)
    assert p.returncode == 125 and b"interrupted" in err, err
    left = partials(world)
    assert left
    store = world.cache / "store"
    assert not [q for q in store.rglob("*") if q.name.endswith(".tmp")]
    with open(world.cache / "store.lock", "w") as f:  # nobody holds the lock
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    have = {n[:-8]: (store / "blobs/sha256" / n).stat().st_size for n in left}
    log.write_text("")
    r = world.cj("pull", "-q", "--insecure-registry", reg, f"{reg}/test/app:app", timeout=120)
    assert r.returncode == 0, r.stderr
    ranges = dict(l.split() for l in log.read_text().splitlines())
    for hexd, size in have.items():
        if size:
            assert ranges["sha256:" + hexd] == f"bytes={size}-", ranges
        data = (store / "blobs/sha256" / hexd).read_bytes()
        assert hashlib.sha256(data).hexdigest() == hexd
    assert partials(world) == []


def test_run_interrupted_pull_cleans_up(world, layout):
    """Ctrl-C while `run REF` pulls: the run stops the downloads as `pull`
    does and exits 130 (128+SIGINT) instead of dying by the signal; no lock
    held, no temporary file in the cache, the partial blobs kept."""
    reg, log = fake_registry(world, layout, "slow")
    argv = [*world.nsexec(), str(BINARY), "run", "--memory", "256", "--cpus", "1",
            "--network", "none", "--insecure-registry", reg, f"{reg}/test/app:app", "true"]
    p, err = interrupt_mid_download(world, argv)
    assert p.returncode == 130 and b"interrupted" in err, (p.returncode, err)
    assert partials(world)
    assert not [q for q in world.cache.rglob("*") if q.name.endswith((".tmp", ".unpack"))]
    with open(world.cache / "store.lock", "w") as f:  # nobody holds the lock
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    names = world.cj("images", "--format", "json").stdout.splitlines()
    assert names == []  # nothing half-pulled is named


def test_run_pulls_when_missing(world, layout):
    """run REGISTRY/NAME:TAG pulls what is not stored (--pull missing, the
    default); --pull never refuses it with the fix named."""
    reg = world.registry()
    world.push(layout.path, "other", f"{reg}/test/other:v1")
    base = ("run", "--memory", "256", "--cpus", "1", "--network", "none",
            "--insecure-registry", reg)
    never = world.cj(*base, "--pull", "never", f"{reg}/test/other:v1", "cat", "/file")
    assert never.returncode == 125 and b"ctr-jailer pull" in never.stderr, never.stderr
    r = world.cj(*base, f"{reg}/test/other:v1", "cat", "/file")
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"the other image\n"
    names = [json.loads(l)["Name"] for l in world.cj("images", "--format", "json").stdout.splitlines()]
    assert names == [f"{reg}/test/other:v1"]


def test_whole_partial_checked_not_fetched(world, layout):
    """A .partial already whole: kept without a request when its digest
    matches, downloaded afresh when it does not."""
    reg, log = fake_registry(world, layout, "plain")
    layers = [l["digest"][7:] for l in json.loads(
        (layout.path / "blobs/sha256" / layout.app["digest"][7:]).read_bytes())["layers"]]
    blobs = world.cache / "store/blobs/sha256"
    blobs.mkdir(parents=True)
    good, bad = layers
    shutil.copy(layout.path / "blobs/sha256" / good, blobs / f"{good}.partial")
    data = bytearray((layout.path / "blobs/sha256" / bad).read_bytes())
    data[-1] ^= 0xff
    (blobs / f"{bad}.partial").write_bytes(data)
    r = world.cj("pull", "-q", "--insecure-registry", reg, f"{reg}/test/app:app")
    assert r.returncode == 0, r.stderr
    asked = [l.split() for l in log.read_text().splitlines()]
    assert not [a for a in asked if a[0] == "sha256:" + good]
    assert [a[1] for a in asked if a[0] == "sha256:" + bad] == ["-"]
    for hexd in layers:
        assert hashlib.sha256((blobs / hexd).read_bytes()).hexdigest() == hexd
    assert partials(world) == []


def test_whole_partial_first_does_not_stop_the_pull(world, layout):
    """A whole .partial of the first blob (the config), with nothing else
    downloading yet: the layers after it are still fetched."""
    reg, _ = fake_registry(world, layout, "plain")
    man = json.loads((layout.path / "blobs/sha256" / layout.app["digest"][7:]).read_bytes())
    config = man["config"]["digest"][7:]
    blobs = world.cache / "store/blobs/sha256"
    blobs.mkdir(parents=True)
    shutil.copy(layout.path / "blobs/sha256" / config, blobs / f"{config}.partial")
    r = world.cj("pull", "-q", "--insecure-registry", reg, f"{reg}/test/app:app")
    assert r.returncode == 0, r.stderr
    for hexd in [config] + [l["digest"][7:] for l in man["layers"]]:
        assert (blobs / hexd).is_file(), f"blob {hexd} missing after the pull"
    assert partials(world) == []


def test_ambient_credentials_not_sent_to_any_registry(world, layout):
    """Credentials from the environment (meant for one registry) are not
    handed to another registry that merely asks for a login."""
    reg, log = fake_registry(world, layout, "basic")
    world.cj("pull", "-q", "--insecure-registry", reg, f"{reg}/test/app:app",
             env={"CTR_JAILER_REGISTRY_AUTH": "registry.example=alice:s3cret"})
    sent = [l for l in log.read_text().splitlines() if l.startswith("AUTH Basic")]
    assert not sent, sent
    # the control: the entry that names this registry is sent
    world.cj("pull", "-q", "--insecure-registry", reg, f"{reg}/test/app:app",
             env={"CTR_JAILER_REGISTRY_AUTH": f"{reg}=alice:s3cret"})
    sent = [l for l in log.read_text().splitlines() if l.startswith("AUTH Basic")]
    assert sent, "the named registry gets its credentials"
