#!/usr/bin/env bash
# Runs on the GPU device machine from the repository root: decode paths behind switches
# (lmx/base/env_switch.h) against the defaults: the CUDA tests with the defaults and with the
# paths on, stories260K greedy CPU == CUDA both ways, the split model on one GPU rank (tensor
# parallelism's NCCL wiring), then `lmx bench` batch-1 decode on the Llama-3.2-1B shape with
# each switch of ON alone and all of ON together against the defaults, and an ncu timing of
# every kernel of replayed decode steps (graph nodes). Session 25 ran it for session 24's four
# paths (docs/performance.md, "CUDA, session 25"). Carried in .devdata:
#   bin/lmx.gz, bin/backend_cuda_test.gz (stripped, gzip), lib/ (the Debian libraries lmx
#   links: tools/device/pack.sh gathers them), lmxw (a wrapper setting LD_LIBRARY_PATH for
#   lmx only), stories/ (stories260K converted), llama-3.2-1b.json (../shared/data/configs).
# The working tree travels too: keep tests/data/models/{llama,llama_tied,mixtral,qwen2,gemma2}
# and move the rest of tests/data out for the call (64 MiB in all). Results: $OUT/logs.tgz.
# ON: the switches under test, e.g. ON="LMX_CUDA_FOO=1 LMX_CUDA_BAR=0" (default: none, so the
# defaults are timed alone). Shorter calls: ROUNDS=1 (bench rounds), TYPES="bf16 q4", NCU=0
# (no ncu table), QUICK=1 (the defaults against all of ON, no single switches), TEST_FILTER /
# ON_FILTER (the two test runs).
set -u
export LMX_TEST_DATA=$PWD/tests/data LMX_TEST_MODELS=$PWD/tests/data/models LMX_TEST_EMBED=$PWD/tests/data/embed
NCCL_DIR=$(python3 -c "import nvidia.nccl, os; print(os.path.join(list(nvidia.nccl.__path__)[0], 'lib'))" 2>/dev/null)
for b in lmx backend_cuda_test; do gunzip -kf .devdata/bin/$b.gz && chmod +x .devdata/bin/$b; done
L=$PWD/.devdata/lmxw CFG=$PWD/.devdata/llama-3.2-1b.json T=.devdata/bin/backend_cuda_test
mkdir -p "$OUT/logs"
pack() { tar czf "$OUT/logs.tgz" -C "$OUT" logs; }
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
ON=${ON:-}
( export LD_LIBRARY_PATH=$PWD/.devdata/lib:$NCCL_DIR:${LD_LIBRARY_PATH:-}
  summary() { grep -E '^\[  (PASSED|FAILED) |FAILED  \]|SKIPPED \]' "$1" | head -8 | tr '\n' ' '; }
  timeout 150 $T --gtest_filter="${TEST_FILTER:-CudaNn.*:CudaDecode.*:CudaGreedy.*:CudaLinalg.*:Nccl*}" \
    > "$OUT/logs/t_default.log" 2>&1
  echo "tests (defaults) rc=$? $(summary "$OUT/logs/t_default.log")"
  env $ON timeout 150 $T --gtest_filter="${ON_FILTER:-CudaDecode.*:CudaGreedy.*:CudaLinalg.*:CudaModel*}" \
    > "$OUT/logs/t_on.log" 2>&1
  echo "tests (ON: ${ON:-none}) rc=$? $(summary "$OUT/logs/t_on.log")" )
for s in "" "$ON"; do
  for dev in cpu cuda; do env $s $L generate --device $dev --model .devdata/stories --prompt "Once upon a time" \
    --max-tokens 300 --temp 0 > "$OUT/logs/st_$dev.txt" 2>&1; done
  cmp -s "$OUT/logs/st_cpu.txt" "$OUT/logs/st_cuda.txt" && echo "stories greedy CPU == CUDA (${s:-defaults})"
done
$L generate --device cuda --tensor-parallel 2 --model .devdata/stories --prompt "Once upon a time" --max-tokens 30 \
  --temp 0 > "$OUT/logs/tp2.txt" 2>&1
echo "--tensor-parallel 2 on one GPU: rc=$? $(tail -1 "$OUT/logs/tp2.txt")"
pack
bench() { local tag=$1; shift; env $E timeout 60 $L bench --device cuda --config "$CFG" "$@" -p 512 -g 128 -n 3 \
            > "$OUT/logs/b_$tag.log" 2>&1; echo "$tag: $(grep -E '^tg' "$OUT/logs/b_$tag.log")"; }
for round in $(seq 1 "${ROUNDS:-2}"); do
  for t in ${TYPES:-bf16 q4 q8}; do
    case $t in bf16) A=(--dtype bf16);; q4) A=(-q --q-bits 4);; q8) A=(-q --q-bits 8);; esac
    SETS="off"; n=0
    [ "${QUICK:-0}" = 1 ] || for sw in $ON; do n=$((n + 1)); SETS="$SETS s$n"; done
    [ -n "$ON" ] && SETS="$SETS on"
    for sw in $SETS; do  # s<i>: the i-th switch of ON alone (tags without '=' come back from $OUT)
      case $sw in off) E="";; on) E="$ON";; *) E=$(echo $ON | cut -d' ' -f"${sw#s}");; esac
      bench "r${round}_${t}_${sw}" "${A[@]}"
    done
  done
  pack
done
[ "${NCU:-1}" = 1 ] && for t in bf16 q4; do  # every kernel of replayed decode steps (the last steps of 12), cold caches
  case $t in bf16) A=(--dtype bf16);; q4) A=(-q --q-bits 4);; esac
  env $ON timeout 200 ncu --graph-profiling node --clock-control none --metrics gpu__time_duration.sum --csv \
    --launch-count 4000 $L bench --device cuda --config "$CFG" "${A[@]}" -p 512 -g 12 -n 1 \
    > "$OUT/logs/ncu_$t.csv" 2> "$OUT/logs/ncu_$t.err"
  echo "ncu $t rc=$?"
done
pack
