# SPDX-License-Identifier: Apache-2.0
"""A registry that misbehaves on purpose, for test_registry.py: it serves an
OCI layout's manifests and blobs over plain HTTP, and in its MODE
  tamper    changes a byte of every layer it serves (same length),
  oversize  serves every layer with extra bytes after it,
  drop      cuts the first whole-blob answer of each layer halfway (the
            Content-Length promised in full), then honours Range,
  slow      sends layers at 256 KiB/s.
Every blob request is appended to LOG as "<digest> <Range header or ->".
Usage: fake_registry.py LAYOUT PORT MODE LOG"""
import hashlib
import json
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

LAYOUT, PORT, MODE, LOG = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3], Path(sys.argv[4])
REF = "org.opencontainers.image.ref.name"
dropped = set()


def blob(digest):
    p = LAYOUT / "blobs/sha256" / digest.split(":", 1)[1]
    return p.read_bytes() if p.is_file() else None


def is_layer(digest):
    index = json.loads((LAYOUT / "index.json").read_text())
    for m in index["manifests"]:
        man = json.loads(blob(m["digest"]))
        if any(l["digest"] == digest for l in man.get("layers", [])):
            return True
    return False


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def answer(self, code, body=b"", ctype="application/octet-stream", extra=()):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        parts = self.path.split("/")
        if self.path in ("/v2", "/v2/"):
            return self.answer(200, b"{}", "application/json")
        if "manifests" in parts:
            ref = parts[-1]
            index = json.loads((LAYOUT / "index.json").read_text())
            for m in index["manifests"]:
                if ref in (m["digest"], m.get("annotations", {}).get(REF)):
                    return self.answer(200, blob(m["digest"]), m["mediaType"])
            return self.answer(404, b'{"errors":[{"code":"MANIFEST_UNKNOWN"}]}')
        if "blobs" in parts:
            return self.serve_blob(parts[-1])
        return self.answer(404)

    def serve_blob(self, digest):
        data = blob(digest)
        rng = self.headers.get("Range")
        with LOG.open("a") as f:
            f.write(f"{digest} {rng or '-'}\n")
        if data is None:
            return self.answer(404)
        layer = is_layer(digest)
        if layer and MODE == "tamper":
            data = bytes([data[0] ^ 0xff]) + data[1:]
        if layer and MODE == "oversize":
            data += b"\0" * 4096
        if layer and MODE == "drop" and digest not in dropped and not rng:
            dropped.add(digest)
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        start = int(rng[6:].split("-")[0]) if rng and rng.startswith("bytes=") else 0
        if start:
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        step = 32768 if layer and MODE == "slow" else len(data) or 1
        for off in range(start, len(data), step):
            self.wfile.write(data[off:off + step])
            if step < len(data):
                self.wfile.flush()
                time.sleep(0.125)


ThreadingHTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
