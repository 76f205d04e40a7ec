#!/bin/bash
# Where a served GPU decode step goes: `lmx serve --device cuda` on Llama-3.2-1B's shape (random weights,
# 4-bit g64, as serve_gpu_compare.sh makes them) under several settings, each a fresh server measured by
# serve_compare.py (same prompt, 32 tokens a request, end tokens banned), then its /metrics (steps, rows,
# decode / prefill seconds) and, with LMX_CUDA_PROFILE=1 in a variant, the event profile it prints at exit.
#
#   LMX=... GGUF_PY=.../gguf-py VOCAB_GGUF=.../ggml-vocab-llama-bpe.gguf OUT=/tmp/out \
#   VARIANTS="base|--streams 8|;prof|--streams 8|LMX_CUDA_PROFILE=1;nopc|--streams 1,8,32|--prefix-cache-bytes,0" \
#   tools/bench/serve_gpu_profile.sh
# Variants are separated by ';', each NAME|serve_compare arguments|settings, the settings separated by ',':
# VAR=VALUE (environment) or lmx serve arguments.
set -u
: "${LMX:?}" "${GGUF_PY:?}" "${VOCAB_GGUF:?}" "${OUT:?}"
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
PY=${PYTHON:-python3}
CONFIG=${CONFIG:-$ROOT/../shared/data/configs/llama-3.2-1b.json}
PORT=${PORT:-18395}
WORK=$(mktemp -d)
trap 'kill $PID 2>/dev/null; rm -rf "$WORK"' EXIT
PID=0
mkdir -p "$OUT"
export PYTHONPATH="$GGUF_PY${PYTHONPATH:+:$PYTHONPATH}"
timeout 300 "$PY" "$HERE/tokenizer_from_vocab_gguf.py" "$VOCAB_GGUF" "$WORK/tok" > "$OUT/make.log" 2>&1
timeout 600 "$PY" "$HERE/random_llama_model.py" "$CONFIG" "$WORK/tok" "$WORK/hf" >> "$OUT/make.log" 2>&1
timeout 600 "$LMX" convert -m "$WORK/hf" -o "$WORK/q4" -q --q-bits 4 --q-group-size 64 >> "$OUT/make.log" 2>&1 || {
  echo "model not made"; tail "$OUT/make.log"; exit 1; }
health() { "$PY" -c 'import sys,urllib.request; urllib.request.urlopen("http://127.0.0.1:%s/%s" % (sys.argv[1], sys.argv[2]), timeout=5)' "$PORT" health; }
serial=1
IFS=';' read -r -a variants <<< "${VARIANTS:-base|--streams 1,8,32|}"
for v in "${variants[@]}"; do
  IFS='|' read -r name args settings <<< "$v"
  envs=() opts=()
  for s in ${settings//,/ }; do case $s in *=*) envs+=("$s");; *) opts+=("$s");; esac; done
  echo "== $name: serve_compare $args; env ${envs[*]:-}; lmx serve ${opts[*]:-}"
  env "${envs[@]}" "$LMX" serve -m "$WORK/q4" --device cuda --port "$PORT" --max-concurrent 32 --max-queue 32 "${opts[@]}" \
    > "$OUT/$name.serve.log" 2>&1 &
  PID=$!
  for _ in $(seq 120); do health 2>/dev/null && break; sleep 1; done
  timeout 200 "$PY" "$HERE/serve_compare.py" --server "lmx=127.0.0.1:$PORT" $args --rounds 1 --max-tokens 32 \
    --ban 128001,128008,128009 --timeout 120 --serial-start $serial 2>&1 | grep -E "^\||lmx" | tail -8
  serial=$((serial + 1000))
  "$PY" -c 'import sys,urllib.request; print(urllib.request.urlopen("http://127.0.0.1:%s/metrics" % sys.argv[1], timeout=5).read().decode())' "$PORT" \
    > "$OUT/$name.metrics.txt" 2>&1
  grep -E "^lmx_(decode|prefill)_(steps|step_rows|seconds|passes|tokens)" "$OUT/$name.metrics.txt"
  kill -INT $PID; for _ in $(seq 30); do kill -0 $PID 2>/dev/null || break; sleep 1; done; kill -9 $PID 2>/dev/null
  wait $PID 2>/dev/null
  grep -A40 -iE "cuda profile|event profile" "$OUT/$name.serve.log" | head -45
done
