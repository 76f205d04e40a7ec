#!/usr/bin/env python3
"""A small stand-in for the Hugging Face Hub, for lmx's io tests (stdlib only).

Serves ROOT/<org>/<name>/<files...> in the hub's URL scheme on 127.0.0.1:
  GET /api/models/<org>/<name>/revision/<rev> -> {"id", "sha", "siblings": [{"rfilename"}]}
  GET /<org>/<name>/resolve/<rev>/<path>      -> the file, honouring "Range: bytes=N-"
Per-repo control files (never listed):
  .sha              commit sha to report (default: 40 x "a")
  .token            bearer token required (401 without it, 403 when wrong)
  .extra_siblings   JSON list of extra names to put in the listing (e.g. "../evil.json")
  .errors           JSON {"file": [status, k]}: the first k GETs of that file answer status
  .no_etag          send no ETag / X-Linked-Etag headers (default: ETag = sha1 of the
                    content, plus X-Linked-Etag = sha256 for *.safetensors, like the hub)
  .cut              JSON {"file": n}: the first GET of that file sends n bytes of the body
                    (after a full Content-Length) and drops the connection
Every request is appended to ROOT/.log as "METHOD PATH RANGE" lines.
Prints "PORT <n>" on stdout once listening (port 0 picks a free one).
"""
import argparse
import hashlib
import json
import os
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ROOT = "."
LOCK = threading.Lock()
CUT_DONE = set()
ERRORS_SENT = {}


def repo_dir(org, name):
    d = os.path.join(ROOT, org, name)
    return d if os.path.isdir(d) else None


def read_control(d, name):
    p = os.path.join(d, name)
    if not os.path.exists(p):
        return None
    with open(p, "r", encoding="utf-8") as f:
        return f.read().strip()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # quiet
        pass

    def record(self):
        with LOCK, open(os.path.join(ROOT, ".log"), "a", encoding="utf-8") as f:
            f.write("%s %s %s\n" % (self.command, self.path, self.headers.get("Range", "-")))

    def send_json(self, code, obj):
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def authorized(self, d):
        token = read_control(d, ".token")
        if token is None:
            return True
        got = self.headers.get("Authorization")
        if got is None:
            self.send_json(401, {"error": "Invalid credentials in Authorization header"})
            return False
        if got != "Bearer " + token:
            self.send_json(403, {"error": "Access to this repo is restricted"})
            return False
        return True

    def do_GET(self):
        self.record()
        path = urllib.parse.urlparse(self.path).path
        parts = [urllib.parse.unquote(p) for p in path.split("/")[1:]]
        if len(parts) == 6 and parts[:2] == ["api", "models"] and parts[4] == "revision":
            return self.listing(parts[2], parts[3])
        if len(parts) >= 5 and parts[2] == "resolve":
            return self.resolve(parts[0], parts[1], "/".join(parts[4:]))
        self.send_json(404, {"error": "not found"})

    def listing(self, org, name):
        d = repo_dir(org, name)
        if d is None:
            return self.send_json(404, {"error": "Repository not found"})
        if not self.authorized(d):
            return
        files = []
        for base, dirs, names in os.walk(d):
            dirs[:] = sorted(x for x in dirs if not x.startswith("."))
            for n in sorted(names):
                if not n.startswith("."):
                    files.append(os.path.relpath(os.path.join(base, n), d).replace(os.sep, "/"))
        extra = read_control(d, ".extra_siblings")
        if extra:
            files += json.loads(extra)
        sha = read_control(d, ".sha") or "a" * 40
        self.send_json(200, {"id": org + "/" + name, "sha": sha,
                             "siblings": [{"rfilename": f} for f in files]})

    def resolve(self, org, name, rel):
        d = repo_dir(org, name)
        if d is None:
            return self.send_json(404, {"error": "Repository not found"})
        if not self.authorized(d):
            return
        full = os.path.realpath(os.path.join(d, rel))
        if not full.startswith(os.path.realpath(d) + os.sep) or not os.path.isfile(full):
            return self.send_json(404, {"error": "Entry not found"})
        errors = read_control(d, ".errors")
        if errors:
            status, times = json.loads(errors).get(rel, [0, 0])
            with LOCK:
                sent = ERRORS_SENT.get(rel, 0)
                fail = sent < times
                if fail:
                    ERRORS_SENT[rel] = sent + 1
            if fail:
                return self.send_json(status, {"error": "injected"})
        with open(full, "rb") as f:
            data = f.read()
        start = 0
        rng = self.headers.get("Range")
        if rng and rng.startswith("bytes=") and rng.endswith("-"):
            start = int(rng[len("bytes="):-1])
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", "bytes */%d" % len(data))
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", "bytes %d-%d/%d" % (start, len(data) - 1, len(data)))
        else:
            self.send_response(200)
        body = data[start:]
        if read_control(d, ".no_etag") is None:
            self.send_header("ETag", '"%s"' % hashlib.sha1(data).hexdigest())
            if rel.endswith(".safetensors"):
                self.send_header("X-Linked-Etag", '"%s"' % hashlib.sha256(data).hexdigest())
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Content-Type", "application/octet-stream")
        self.end_headers()
        cut = read_control(d, ".cut")
        if cut:
            limits = json.loads(cut)
            with LOCK:
                first = rel in limits and rel not in CUT_DONE
                if first:
                    CUT_DONE.add(rel)
            if first:
                self.wfile.write(body[:limits[rel]])
                self.wfile.flush()
                self.close_connection = True
                return
        self.wfile.write(body)


def main():
    global ROOT
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", required=True)
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args()
    ROOT = args.root
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    print("PORT %d" % server.server_address[1], flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
