#!/usr/bin/env python3
"""Bounded load test of `lmx serve` on loopback (Python standard library only).

Starts the server itself (stories260K converted from ../shared/data unless --model is
given), warms it up, reads the baseline of GET /metrics, then runs C concurrent
streaming clients x R requests each on /v1/completions. Reports errors, p50 / p99 time
to first token and inter-token latency as the clients measure them, the mean batch
size, and whether the server's active CPU tensor memory is back to the baseline once
the load is over. Exit status 0 only with no errors and memory back to baseline; the
whole run is bounded by --deadline seconds.

  python3 tools/bench/serve_load.py --lmx build/apps/lmx/lmx --clients 64 --requests 10
"""
import argparse
import http.client
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time

WORDS = ("Once upon a time there was a little girl named Lily who loved to play in the park "
         "with her dog and the big tree and the sun").split()


def metrics(host, port):
    c = http.client.HTTPConnection(host, port, timeout=10)
    c.request("GET", "/metrics")
    text = c.getresponse().read().decode()
    c.close()
    out = {}
    for line in text.splitlines():
        m = re.match(r"^(\S+) (\S+)$", line)
        if m and not line.startswith("#"):
            out[m.group(1)] = float(m.group(2))
    return out


def stream_once(host, port, prompt, max_tokens, timeout, extra=None, last=None):
    """One streamed completion: (ttft, [inter-token gaps], error or None). `extra`: more
    body fields (they win over the defaults); `last` (a dict): gets the finish_reason and
    the usage the stream reported (serve_compare.py counts tokens with them)."""
    body = json.dumps(dict({"prompt": prompt, "max_tokens": max_tokens, "temperature": 0.7,
                            "stream": True}, **(extra or {})))
    c = http.client.HTTPConnection(host, port, timeout=timeout)
    t0 = time.perf_counter()
    try:
        c.request("POST", "/v1/completions", body, {"Content-Type": "application/json"})
        r = c.getresponse()
        if r.status != 200:
            return None, [], "status %d: %s" % (r.status, r.read()[:200])
        ttft, prev, gaps, done, buf = None, None, [], False, b""
        while True:
            chunk = r.read1(65536) if hasattr(r, "read1") else r.read(1)
            if not chunk:
                break
            buf += chunk
            while b"\n\n" in buf:
                event, buf = buf.split(b"\n\n", 1)
                payload = event[len(b"data: "):]
                if payload == b"[DONE]":
                    done = True
                    continue
                j = json.loads(payload)
                if "error" in j:
                    return ttft, gaps, "error event: %s" % j["error"]
                if last is not None:
                    if j.get("usage"):
                        last["usage"] = j["usage"]
                    if j["choices"] and j["choices"][0].get("finish_reason"):
                        last["finish_reason"] = j["choices"][0]["finish_reason"]
                if j["choices"] and j["choices"][0]["text"]:
                    now = time.perf_counter()
                    if ttft is None:
                        ttft = now - t0
                    else:
                        gaps.append(now - prev)
                    prev = now
        return ttft, gaps, None if done else "stream ended without [DONE]"
    except Exception as e:  # noqa: BLE001 (every failure counts as an error)
        return None, [], repr(e)
    finally:
        c.close()


def percentile(xs, p):
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100.0 * (len(xs) - 1))))]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lmx", default="build/apps/lmx/lmx")
    ap.add_argument("--model", help="model folder (default: stories260K converted from ../shared/data)")
    ap.add_argument("--clients", type=int, default=64)
    ap.add_argument("--requests", type=int, default=10, help="requests per client")
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--max-concurrent", type=int, default=32)
    ap.add_argument("--threads", type=int, default=0, help="server -t (0: its default)")
    ap.add_argument("--deadline", type=float, default=600, help="seconds for the whole run")
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    start = time.monotonic()
    tmp = tempfile.mkdtemp(prefix="lmx-serve-load-")
    server = None
    try:
        model = a.model
        if not model:
            src = os.path.join("..", "shared", "data", "models", "stories260K")
            model = os.path.join(tmp, "stories260K")
            subprocess.run([a.lmx, "convert", "--from-llama2c", os.path.join(src, "stories260K.bin"),
                            "--tokenizer", os.path.join(src, "tok512.bin"), "-o", model],
                           check=True, stdout=subprocess.DEVNULL)
        cmd = [a.lmx, "serve", "-m", model, "--port", "0", "--max-concurrent", str(a.max_concurrent),
               "--max-queue", str(a.clients), "--timeout", str(a.deadline)]
        if a.threads:
            cmd += ["-t", str(a.threads)]
        server = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
        port = None
        while port is None:
            line = server.stderr.readline()
            if not line:
                sys.exit("lmx serve exited before listening")
            m = re.search(r"http://[^:]+:(\d+)", line)
            if m:
                port = int(m.group(1))
        threading.Thread(target=lambda: server.stderr.read(), daemon=True).start()
        host = "127.0.0.1"
        stream_once(host, port, "Once", 8, 60)  # warm-up: buffers the first forward creates
        base = metrics(host, port)

        rng = random.Random(a.seed)
        jobs = [[(" ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 12))), a.max_tokens)
                 for _ in range(a.requests)] for _ in range(a.clients)]
        ttfts, gaps, errors = [], [], []
        lock = threading.Lock()
        per_request_timeout = max(10.0, a.deadline - (time.monotonic() - start) - 30)

        def client(i):
            for prompt, n in jobs[i]:
                if time.monotonic() - start > a.deadline - 30:
                    with lock:
                        errors.append("deadline: request not sent")
                    continue
                t, g, err = stream_once(host, port, prompt, n, per_request_timeout)
                with lock:
                    if err:
                        errors.append(err)
                    if t is not None:
                        ttfts.append(t)
                    gaps.extend(g)

        t0 = time.perf_counter()
        threads = [threading.Thread(target=client, args=(i,)) for i in range(a.clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0

        # The server settles (rows leave, places free) within a few steps.
        for _ in range(100):
            after = metrics(host, port)
            if after.get("lmx_batch_size", 1) == 0 and after.get("lmx_requests_admitted", 1) == 0:
                break
            time.sleep(0.05)
        steps = after["lmx_decode_steps_total"] - base["lmx_decode_steps_total"]
        rows = after["lmx_decode_step_rows_total"] - base["lmx_decode_step_rows_total"]
        tokens = after["lmx_generated_tokens_total"] - base["lmx_generated_tokens_total"]
        mem_base, mem_after = base["lmx_memory_active_bytes"], after["lmx_memory_active_bytes"]
        total = a.clients * a.requests
        print("requests: %d (%d clients x %d), errors: %d" % (total, a.clients, a.requests, len(errors)))
        for e in sorted(set(errors))[:5]:
            print("  error:", e)
        print("wall: %.2f s, generated tokens: %d (%.0f tok/s aggregate)" % (wall, tokens, tokens / wall))
        print("TTFT: p50 %.1f ms, p99 %.1f ms (%d streams)" %
              (1e3 * percentile(ttfts, 50), 1e3 * percentile(ttfts, 99), len(ttfts)))
        print("inter-token: p50 %.2f ms, p99 %.2f ms (%d gaps)" %
              (1e3 * percentile(gaps, 50), 1e3 * percentile(gaps, 99), len(gaps)))
        print("mean batch size: %.1f over %d decode steps" % (rows / steps if steps else 0, steps))
        print("active memory: baseline %d B, after %d B (%s)" %
              (mem_base, mem_after, "back to baseline" if mem_after == mem_base else "NOT back"))
        return 0 if not errors and mem_after == mem_base else 1
    finally:
        if server:
            server.terminate()
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
