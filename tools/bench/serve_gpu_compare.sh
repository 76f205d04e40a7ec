#!/bin/bash
# Issue 21's GPU comparison: `lmx serve --device cuda` against llama-server built for CUDA
# (-ngl 99 -np 32 -cb), Llama-3.2-1B's shape, lmx 4-bit (g64) against Q4_0, on one GPU,
# aggregate tokens/s, TTFT and ITL at 1, 8 and 32 streams, the same prompt and unique
# prompts (tools/bench/serve_compare.py), the two servers up at once, each idle while the
# other is measured. Bounded: every step has a timeout, both servers are killed on exit.
#
#   LMX=build-cuda/apps/lmx/lmx LLAMA_SERVER=/path/llama-server GGUF_PY=/path/llama.cpp/gguf-py \
#   OUT=/tmp/out tools/bench/serve_gpu_compare.sh
#
# Needs python3 with numpy, gguf-py ($GGUF_PY), llama-quantize (default: beside
# $LLAMA_SERVER) and llama.cpp's models/ggml-vocab-llama-bpe.gguf (default: beside
# $GGUF_PY; VOCAB_GGUF=...) for Llama 3's tokenizer. The models are made here (random
# weights, as on the CPU, docs/performance.md): tokenizer_from_vocab_gguf.py, then
# random_llama_model.py (one set of F16 weights written as an HF folder and a GGUF), then
# `lmx convert -q --q-bits 4 --q-group-size 64` and `llama-quantize ... Q4_0`.
# Writes under $OUT: table.md (the rows), same.json / unique.json (serve_compare's),
# checks.txt (greedy served == `lmx generate`), the servers' logs, lmx's /metrics, run.log.
# Optional: TOKENIZER_DIR (a Llama 3 tokenizer folder to use instead of the one made from
# the vocabulary GGUF), WORK (model files, default a temporary folder, removed at the end), PYTHON,
# STREAMS (1,8,32), ROUNDS (2), MAX_TOKENS (32), LMX_PORT / LLAMA_PORT (18391 / 18392),
# CONFIG (Llama-3.2-1B's config.json; default ../shared/data/configs/llama-3.2-1b.json), and for a
# trial of the script itself on a CPU-only machine LMX_DEVICE=cpu LLAMA_NGL=0 (with a small CONFIG);
# READY_FILE: made while llama-server is still being built, the script makes lmx's model first,
# then waits (up to READY_WAIT seconds, 900) for this file before it uses llama.cpp's tools.
set -u
: "${LMX:?the lmx binary built with -DLMX_CUDA=ON}" "${LLAMA_SERVER:?llama-server built for CUDA}"
: "${GGUF_PY:?the gguf-py folder of llama.cpp}" "${OUT:?output folder}"
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
PY=${PYTHON:-python3}
LLAMA_QUANTIZE=${LLAMA_QUANTIZE:-$(dirname "$LLAMA_SERVER")/llama-quantize}
VOCAB_GGUF=${VOCAB_GGUF:-$GGUF_PY/../models/ggml-vocab-llama-bpe.gguf}
CONFIG=${CONFIG:-$ROOT/../shared/data/configs/llama-3.2-1b.json}
STREAMS=${STREAMS:-1,8,32}
ROUNDS=${ROUNDS:-2}
MAX_TOKENS=${MAX_TOKENS:-32}
LMX_PORT=${LMX_PORT:-18391}
LLAMA_PORT=${LLAMA_PORT:-18392}
LMX_DEVICE=${LMX_DEVICE:-cuda}
LLAMA_NGL=${LLAMA_NGL:-99}
BAN=128001,128008,128009  # Llama 3's end tokens: every request makes exactly MAX_TOKENS
mkdir -p "$OUT"
OWN_WORK=0
if [ -z "${WORK:-}" ]; then WORK=$(mktemp -d); OWN_WORK=1; fi
LOG=$OUT/run.log
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  sleep 1
  for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
  [ "$OWN_WORK" = 1 ] && rm -rf "$WORK"
}
trap cleanup EXIT
say() { echo "[$(date -u +%H:%M:%S)] $*" | tee -a "$LOG"; }
# step SECONDS NAME COMMAND...: runs it under a timeout, its output into the log; fails the run.
step() {
  local t=$1 name=$2; shift 2
  say "$name: $*"
  if ! timeout "$t" "$@" >> "$LOG" 2>&1; then say "FAILED: $name"; exit 1; fi
}
# GET http://127.0.0.1:PORT/PATH to stdout; fails on an error or a non-2xx status (python's
# standard library: the GPU machine has no curl).
http_get() {
  "$PY" -c 'import sys, urllib.request; sys.stdout.write(urllib.request.urlopen("http://127.0.0.1:%s/%s" % (sys.argv[1], sys.argv[2]), timeout=5).read().decode("utf-8", "replace"))' "$1" "$2"
}
wait_health() {  # PORT PID SECONDS
  for _ in $(seq "$3"); do
    http_get "$1" health > /dev/null 2>&1 && return 0
    kill -0 "$2" 2>/dev/null || return 1
    sleep 1
  done
  return 1
}

say "machine: $(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 | head -1); $(nproc) CPUs"
REV=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
say "lmx: $LMX (tree $REV)"
say "llama-server: $LLAMA_SERVER"
for f in "$LMX" "${TOKENIZER_DIR:-$VOCAB_GGUF}" "$CONFIG"; do
  [ -e "$f" ] || { say "missing: $f"; exit 1; }
done

# The models: one set of random weights, an lmx 4-bit folder and a Q4_0 GGUF.
export PYTHONPATH="$GGUF_PY${PYTHONPATH:+:$PYTHONPATH}"
TOK=${TOKENIZER_DIR:-$WORK/tok}
[ -n "${TOKENIZER_DIR:-}" ] || step 300 tokenizer "$PY" "$HERE/tokenizer_from_vocab_gguf.py" "$VOCAB_GGUF" "$TOK"
step 600 weights "$PY" "$HERE/random_llama_model.py" "$CONFIG" "$TOK" "$WORK/hf" --gguf "$WORK/f16.gguf"
step 600 lmx-convert "$LMX" convert -m "$WORK/hf" -o "$WORK/q4" -q --q-bits 4 --q-group-size 64
rm -rf "$WORK/hf"
if [ -n "${READY_FILE:-}" ]; then
  say "waiting for $READY_FILE"
  for _ in $(seq "${READY_WAIT:-900}"); do [ -e "$READY_FILE" ] && break; sleep 1; done
fi
for f in "$LLAMA_SERVER" "$LLAMA_QUANTIZE"; do
  [ -e "$f" ] || { say "missing: $f"; exit 1; }
done
step 600 llama-quantize "$LLAMA_QUANTIZE" "$WORK/f16.gguf" "$WORK/q4_0.gguf" Q4_0
rm -f "$WORK/f16.gguf"
du -sh "$WORK/q4" "$WORK/q4_0.gguf" >> "$LOG" 2>&1

# The servers, both up at once (each idle while the other is measured).
say "start lmx serve --device $LMX_DEVICE"
"$LMX" serve -m "$WORK/q4" --device "$LMX_DEVICE" --port "$LMX_PORT" --max-concurrent 32 --max-queue 32 \
  > "$OUT/lmx_serve.log" 2>&1 &
LMX_PID=$!
PIDS+=("$LMX_PID")
say "start llama-server -ngl $LLAMA_NGL -np 32 -cb"
"$LLAMA_SERVER" -m "$WORK/q4_0.gguf" -ngl "$LLAMA_NGL" -np 32 -cb -c 8192 --port "$LLAMA_PORT" \
  > "$OUT/llama_server.log" 2>&1 &
LLAMA_PID=$!
PIDS+=("$LLAMA_PID")
SERVERS=()
if wait_health "$LMX_PORT" "$LMX_PID" 240; then SERVERS+=(--server "lmx=127.0.0.1:$LMX_PORT"); else say "lmx serve did not come up (lmx_serve.log)"; fi
if wait_health "$LLAMA_PORT" "$LLAMA_PID" 240; then SERVERS+=(--server "llama=127.0.0.1:$LLAMA_PORT"); else say "llama-server did not come up (llama_server.log)"; fi
[ ${#SERVERS[@]} -gt 0 ] || exit 1

# Greedy checks on the GPU: a served completion equals `lmx generate` of the same text, and
# 8 at once each equal it (the batch scheduler's rows on CUDA).
if kill -0 "$LMX_PID" 2>/dev/null; then
  PROMPT="The quick brown fox jumps over the lazy dog because it was"
  timeout 120 "$LMX" generate -m "$WORK/q4" --device "$LMX_DEVICE" --ignore-chat-template -p "$PROMPT" \
    --max-tokens 16 --temp 0 > "$WORK/alone.txt" 2>> "$LOG"
  timeout 180 "$PY" - "$LMX_PORT" "$PROMPT" "$WORK/alone.txt" > "$OUT/checks.txt" 2>&1 <<'EOF'
import concurrent.futures, http.client, json, sys
port, prompt, alone = int(sys.argv[1]), sys.argv[2], open(sys.argv[3], encoding="utf-8", errors="replace").read()
def ask(_):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    c.request("POST", "/v1/completions", json.dumps({"prompt": prompt, "max_tokens": 16, "temperature": 0}),
              {"Content-Type": "application/json"})
    return json.loads(c.getresponse().read())["choices"][0]["text"]
one = ask(0)
with concurrent.futures.ThreadPoolExecutor(8) as ex:
    many = list(ex.map(ask, range(8)))
print("lmx generate:", repr(alone))
print("served alone:", repr(one))
print("served alone is in lmx generate's output:", one != "" and one in alone)
print("8 at once equal the one alone:", all(m == one for m in many), [m == one for m in many])
EOF
  cat "$OUT/checks.txt" >> "$LOG"
fi

# The measurements: serve_compare.py (warms each server up with one request first).
COMMON=(--streams "$STREAMS" --rounds "$ROUNDS" --max-tokens "$MAX_TOKENS" --ban "$BAN" --timeout 120)
say "same prompt"
timeout 300 "$PY" "$HERE/serve_compare.py" "${SERVERS[@]}" "${COMMON[@]}" --json "$OUT/same.json" 2>&1 | tee -a "$LOG"
say "unique prompts"
timeout 300 "$PY" "$HERE/serve_compare.py" "${SERVERS[@]}" "${COMMON[@]}" --unique-prompts --json "$OUT/unique.json" 2>&1 | tee -a "$LOG"
http_get "$LMX_PORT" metrics > "$OUT/lmx_metrics.txt" 2>/dev/null
nvidia-smi >> "$LOG" 2>&1

# The table: per protocol, round and streams, each server's row and lmx / llama.
"$PY" - "$OUT" > "$OUT/table.md" <<'EOF'
import json, os, sys
out = sys.argv[1]
print("| protocol | round | streams | lmx tok/s | llama tok/s | lmx / llama | TTFT p50 lmx / llama (s) | ITL p50 lmx / llama (ms) | errors |")
print("|---|---|---|---|---|---|---|---|---|")
for proto in ("same", "unique"):
    path = os.path.join(out, proto + ".json")
    if not os.path.exists(path):
        continue
    rows = json.load(open(path))
    keys = sorted({(r["round"], r["streams"]) for r in rows})
    for rnd, c in keys:
        by = {r["server"]: r for r in rows if r["round"] == rnd and r["streams"] == c}
        l, g = by.get("lmx"), by.get("llama")
        f = lambda r, k, s=1.0, fmt="%.3f": (fmt % (r[k] * s)) if r and r.get(k) is not None else "-"
        ratio = "%.2fx" % (l["tps"] / g["tps"]) if l and g else "-"
        errs = sum(len(r["errors"]) for r in by.values())
        print(f"| {proto} | {rnd} | {c} | {f(l, 'tps', fmt='%.1f')} | {f(g, 'tps', fmt='%.1f')} | {ratio} | "
              f"{f(l, 'ttft_p50')} / {f(g, 'ttft_p50')} | {f(l, 'itl_p50', 1e3, '%.1f')} / {f(g, 'itl_p50', 1e3, '%.1f')} | {errs} |")
EOF
tee -a "$LOG" < "$OUT/table.md"
say "done"
