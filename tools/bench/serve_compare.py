#!/usr/bin/env python3
"""Aggregate generated tokens/s and time to first token of OpenAI-compatible servers
already running (lmx serve, llama.cpp's llama-server, ...), measured in turn in one run:
for each number of concurrent streams and each round, every server gets C clients that
start together, each streaming one /v1/completions of the same prompt text with
max_tokens G and the end-of-text tokens banned (logit_bias -100, so every request makes
exactly G tokens; checked through finish_reason "length" and the usage when reported).
Aggregate tokens/s = C x G / (wall time from the first request sent to the last stream
ended); TTFT: from sending a request to its first text chunk, p50 over the C requests;
ITL: p50 of the gaps between text chunks. Each server is warmed up with one request.
With --unique-prompts every request's prompt starts with its own number ("Story 17.")
so no server finds any of it cached (llama-server keeps each slot's last prompt, lmx's
prefix cache earlier prompts and replies): TTFT then includes the whole prompt's prefill.
The numbers start at --serial-start (1): a second run against the same servers must start
past the first run's numbers, or its prompts are the first run's, cached.

  python3 tools/bench/serve_compare.py --server lmx=127.0.0.1:8080 \\
      --server llama=127.0.0.1:8081 --streams 1,8,32 --rounds 2 --max-tokens 64 \\
      --ban 128001,128008,128009

Standard library only. Bounded: every request has a timeout (--timeout s)."""
import argparse
import json
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from serve_load import WORDS, percentile, stream_once  # noqa: E402


def run_streams(host, port, clients, prompts, max_tokens, extra, timeout):
    results = [None] * clients
    start = threading.Barrier(clients + 1)

    def client(i):
        start.wait()
        last = {}
        t, gaps, err = stream_once(host, port, prompts[i], max_tokens, timeout, extra, last)
        results[i] = (t, gaps, err, last)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for th in threads:
        th.start()
    start.wait()
    t0 = time.perf_counter()
    for th in threads:
        th.join()
    wall = time.perf_counter() - t0
    errors = [r[2] for r in results if r[2]]
    for _, _, err, last in results:
        if err:
            continue
        if last.get("finish_reason") != "length":
            errors.append("finish_reason %r, not length" % last.get("finish_reason"))
        usage = last.get("usage")
        if usage and usage.get("completion_tokens") != max_tokens:
            errors.append("completion_tokens %r, not %d" % (usage.get("completion_tokens"), max_tokens))
    prompt_tokens = sorted({(r[3].get("usage") or {}).get("prompt_tokens") for r in results} - {None})
    return {
        "tps": clients * max_tokens / wall,
        "wall": wall,
        "ttft_p50": percentile([r[0] for r in results if r[0] is not None], 50),
        "itl_p50": percentile([g for r in results for g in r[1]], 50),
        "errors": errors,
        "prompt_tokens": prompt_tokens,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--server", action="append", required=True, help="NAME=HOST:PORT (repeat)")
    ap.add_argument("--streams", default="1,8,32")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--prompt-words", type=int, default=24)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--ban", default="", help="token ids to ban (comma-separated): the model's EOS / EOT")
    ap.add_argument("--temperature", type=float, default=0.0)
    ap.add_argument("--timeout", type=float, default=600)
    ap.add_argument("--json", help="also write the rows here")
    ap.add_argument("--unique-prompts", action="store_true",
                    help="start each request's prompt with its own number (no cached prefix anywhere)")
    ap.add_argument("--serial-start", type=int, default=1,
                    help="the first prompt number of --unique-prompts (each server of each row takes the "
                         "next C numbers: a run uses rounds x sum(streams) x servers of them): against servers "
                         "that already ran --unique-prompts, start past the numbers they saw (lmx's prefix "
                         "cache and llama-server's slots keep earlier prompts; 100-999 keep the token count of 1-9)")
    a = ap.parse_args()
    servers = []
    for s in a.server:
        name, addr = s.split("=", 1)
        host, port = addr.rsplit(":", 1)
        servers.append((name, host, int(port)))
    prompt = " ".join(WORDS[i % len(WORDS)] for i in range(a.prompt_words))
    extra = {"temperature": a.temperature, "stream_options": {"include_usage": True}}
    if a.ban:
        extra["logit_bias"] = {t: -100 for t in a.ban.split(",")}
    for name, host, port in servers:  # warm-up
        _, _, err = stream_once(host, port, prompt, 4, a.timeout, extra)
        if err:
            raise SystemExit("%s: warm-up failed: %s" % (name, err))
    serial = iter(range(a.serial_start, 1 << 30))

    def prompts_for(clients):
        if not a.unique_prompts:
            return [prompt] * clients
        return ["Story %d. %s" % (next(serial), prompt) for _ in range(clients)]

    rows = []
    print("round streams server tok/s wall_s ttft_p50_s itl_p50_s prompt_tokens errors", flush=True)
    for rnd in range(1, a.rounds + 1):
        for c in [int(x) for x in a.streams.split(",")]:
            for name, host, port in servers:
                r = run_streams(host, port, c, prompts_for(c), a.max_tokens, extra, a.timeout)
                r.update(round=rnd, streams=c, server=name)
                rows.append(r)
                print("%d %d %s %.2f %.2f %.3f %.4f %s %d %s" % (
                    rnd, c, name, r["tps"], r["wall"], r["ttft_p50"], r["itl_p50"],
                    r["prompt_tokens"], len(r["errors"]), "; ".join(r["errors"][:2])), flush=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 1 if any(r["errors"] for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
