#!/bin/bash
# lmx against llama.cpp on the CPU, same run (issue 23): per shape and type, llama-bench,
# then `lmx bench` in each CPU setting asked for, back to back; prints one table row per
# configuration with the ratios over llama.cpp of the same window.
#
#   tools/bench/cpu_llama_compare.sh LLAMA_BENCH GGUF_DIR [LMX]
#     LLAMA_BENCH  llama.cpp's llama-bench (a GGML_NATIVE build)
#     GGUF_DIR     holds <shape>-f16.gguf, <shape>-Q8_0.gguf, <shape>-Q4_0.gguf
#                  (tools/bench/random_gguf.py, then llama-quantize)
#     LMX          the lmx binary (default build/apps/lmx/lmx)
#   SHAPES="qwen2.5-0.5b llama-3.2-1b"  TYPES="bf16 q8 q4"  THREADS=2
#   SETTINGS="default"  lmx runs per configuration: default, avx2 (LMX_CPU=avx2),
#                       bf16_dot / exact_bf16 (LMX_BF16_DOT=1 / 0; bf16 only)
set -u
LLAMA=$1
GGUF=$2
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
LMX=${3:-$ROOT/build/apps/lmx/lmx}
T=${THREADS:-2}
field() { python3 -c "import json,sys; print('%.1f' % json.load(sys.stdin)['$1'])"; }
echo "$("$LMX" bench --config "$ROOT/../shared/data/configs/qwen2.5-0.5b.json" -p 1 -g 1 -n 1 -t 1 --json 2>/dev/null | python3 -c "import json,sys; print(json.load(sys.stdin)['device'])")"
echo "| shape, type | time (UTC), load | llama.cpp pp512 / tg128 | lmx setting | lmx pp512 / tg128 | lmx / llama.cpp |"
echo "|---|---|---|---|---|---|"
for shape in ${SHAPES:-qwen2.5-0.5b llama-3.2-1b}; do
  for type in ${TYPES:-bf16 q8 q4}; do
    case $type in
      bf16) gguf=$GGUF/$shape-f16.gguf; args=(--dtype bf16); ref=F16 ;;
      q8) gguf=$GGUF/$shape-Q8_0.gguf; args=(-q --q-bits 8 --q-group-size 64); ref=Q8_0 ;;
      q4) gguf=$GGUF/$shape-Q4_0.gguf; args=(-q --q-bits 4 --q-group-size 64); ref=Q4_0 ;;
    esac
    start="$(date -u +%H:%M) $(cut -d' ' -f1 /proc/loadavg)"
    out=$("$LLAMA" -m "$gguf" -p 512 -n 128 -t "$T" -r 3 -o json 2>/dev/null)
    lp=$(echo "$out" | python3 -c "import json,sys; print('%.1f' % [r['avg_ts'] for r in json.load(sys.stdin) if r['n_prompt'] > 0][0])")
    lg=$(echo "$out" | python3 -c "import json,sys; print('%.1f' % [r['avg_ts'] for r in json.load(sys.stdin) if r['n_gen'] > 0][0])")
    for setting in ${SETTINGS:-default}; do
      env=()
      case $setting in
        avx2) env=(LMX_CPU=avx2) ;;
        exact_bf16) [ $type = bf16 ] || continue; env=(LMX_BF16_DOT=0) ;;
        bf16_dot) [ $type = bf16 ] || continue; env=(LMX_BF16_DOT=1) ;;
      esac
      j=$(env "${env[@]}" "$LMX" bench --config "$ROOT/../shared/data/configs/$shape.json" "${args[@]}" \
            -p 512 -g 128 -n 3 -t "$T" --json 2>/dev/null)
      p=$(echo "$j" | field prompt_tps)
      g=$(echo "$j" | field generation_tps)
      r=$(python3 -c "print('%.2f / %.2f' % ($p / $lp, $g / $lg))")
      echo "| $shape, $type / $ref | $start | $lp / $lg | $setting | $p / $g | $r |"
    done
  done
done
