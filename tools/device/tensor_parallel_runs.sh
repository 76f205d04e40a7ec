#!/usr/bin/env bash
# Issue 24's proofs and benchmark on a multi-GPU device kind (nvidia-h100-x2 / -x4 / h200-x2 / -x4),
# from the repository root, packed by tools/device/pack.sh (bin.tar.xz with lmx and
# backend_cuda_test of a -DLMX_CUDA=ON build, stories/, shared/, and with LLAMA_SRC llstage.tar.xz).
# Steps (STEPS, default "tests greedy bench llama train"; each fits one 600 s call alone, two or three
# together on a warm machine):
# - tests:  backend_cuda_test's NCCL / tensor-parallel tests (the NcclGroupMultiGpu ones run with 2+ GPUs:
#           collectives against the host, fixtures' shards against the whole model's logits, split greedy
#           tokens, decode graphs with the NCCL calls inside, an uncapturable step; a collective stuck
#           past the timeout aborts the group), then the CUDA suite whole;
# - greedy: stories260K's greedy 200 tokens at --tensor-parallel 1 / 2 / 4 (as many as there are GPUs)
#           on CUDA, each against the CPU's;
# - bench:  `lmx bench` on the Llama-3.1-8B shape (tools/device/configs/llama-3.1-8b.json, random
#           weights) at bf16 and 4 bits, pp2048 + tg128 after a 512-token prompt, at TP 1 / 2 / 4;
# - llama:  llama.cpp built for sm_90, random F16 / Q4_0 GGUFs of the same shape, llama-bench -ngl 99
#           -sm row on 1 / 2 / 4 GPUs (CUDA_VISIBLE_DEVICES), the same prompt and generation lengths;
# - train:  `lmx lora --device cuda` on stories260K, LoRA and full, whole and --tensor-parallel 2: the
#           same test loss.
# NCCL_NVLS_ENABLE stays as the machine sets it (0). Logs: $OUT/tp/*.log, a summary on stdout.
set -u
R=$PWD; D=$R/.devdata; L=$OUT/tp; mkdir -p "$L"
STEPS=${STEPS-"tests greedy bench llama train"}
T0=$(date +%s)
el() { echo "[$(( $(date +%s) - T0 ))s] $*"; }
has() { [[ " $STEPS " == *" $1 "* ]]; }
nvidia-smi -L | tee "$L/gpu.txt"
GPUS=$(nvidia-smi -L | grep -c '^GPU')
echo "NCCL_NVLS_ENABLE=${NCCL_NVLS_ENABLE:-unset}"
mkdir -p /tmp/b && tar xJf "$D/bin.tar.xz" -C /tmp/b && B=/tmp/b/bin
export LD_LIBRARY_PATH=/tmp/b/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
for m in cublas cuda_runtime nccl; do
  d=$(python3 -c "import nvidia.$m,os;print(os.path.dirname(nvidia.$m.__file__))" 2>/dev/null) && export LD_LIBRARY_PATH=$LD_LIBRARY_PATH:$d/lib
done
ldd "$B/lmx" | grep 'not found'
ln -sfn "$D/shared" "$R/../shared"
CFG=$R/tools/device/configs/llama-3.1-8b.json
export LMX_TEST_MODELS=$R/tests/data/models LMX_TEST_DATA=$R/tests/data
ranks() { local r=1; while [ $r -le "$GPUS" ] && [ $r -le 4 ]; do echo $r; r=$((r * 2)); done; }
if has llama; then  # built in the background while the GPU steps run
  bash tools/device/build_llama_bench.sh "$D" "$L" 24 &
fi
summary() { grep -E '^\[  (PASSED|FAILED) |FAILED  \]|SKIPPED \]' "$1" | head -20; }
if has tests; then
  el "NCCL / tensor-parallel tests on $GPUS GPUs"
  timeout 240 "$B/backend_cuda_test" --gtest_filter='Nccl*:*TensorParallel*' > "$L/t_nccl.log" 2>&1
  echo "rc=$?"; summary "$L/t_nccl.log"
  el "the CUDA suite"
  timeout 240 "$B/backend_cuda_test" > "$L/t_all.log" 2>&1; echo "rc=$?"; summary "$L/t_all.log"
fi
if has greedy; then
  gen() { timeout 120 "$B/lmx" generate --model "$D/stories" --prompt "Once upon a time" --max-tokens 200 --temp 0 "$@"; }
  gen --device cpu > "$L/st_cpu.txt" 2>&1
  for n in $(ranks); do
    gen --device cuda --tensor-parallel "$n" > "$L/st_tp$n.txt" 2>&1
    cmp -s "$L/st_cpu.txt" "$L/st_tp$n.txt" && echo "stories greedy: CUDA TP $n == CPU" ||
      { echo "stories greedy: CUDA TP $n DIFFERS from the CPU"; tail -3 "$L/st_tp$n.txt"; }
  done
fi
if has bench; then
  for t in bf16 q4; do
    case $t in bf16) A=(--dtype bf16);; q4) A=(-q --q-bits 4);; esac
    for n in $(ranks); do
      el "lmx bench 8B $t TP $n"
      timeout 240 "$B/lmx" bench --device cuda --config "$CFG" "${A[@]}" --tensor-parallel "$n" -p 512 -g 128 -n 2 \
        > "$L/b_${t}_tp$n.log" 2>&1
      timeout 240 "$B/lmx" bench --device cuda --config "$CFG" "${A[@]}" --tensor-parallel "$n" -p 2048 -g 4 -n 2 \
        > "$L/b_${t}_p2048_tp$n.log" 2>&1
      echo "$t TP $n: $(grep -hE '^(pp|tg)' "$L/b_${t}_tp$n.log" "$L/b_${t}_p2048_tp$n.log" | tr '\n' ' ')"
    done
  done
fi
if has llama; then
  el "waiting for llama.cpp"
  for _ in $(seq 1 300); do grep -q LLBUILD_RC "$L/llbuild.log" 2>/dev/null && break; sleep 3; done
  if [ -x /tmp/llb/bin/llama-bench ]; then
    PYTHONPATH=/tmp/ll/gguf-py python3 tools/bench/random_gguf.py "$CFG" /tmp/l8-f16.gguf \
      "$R/../shared/data/tokenizers/llama.cpp-vocab-gguf/ggml-vocab-gpt-2.gguf" > "$L/gguf.log" 2>&1
    /tmp/llb/bin/llama-quantize /tmp/l8-f16.gguf /tmp/l8-Q4_0.gguf Q4_0 > "$L/quant.log" 2>&1
    for n in $(ranks); do
      devs=$(seq -s, 0 $((n - 1)))
      el "llama-bench -sm row on GPUs $devs"
      CUDA_VISIBLE_DEVICES=$devs timeout 280 /tmp/llb/bin/llama-bench -m /tmp/l8-f16.gguf,/tmp/l8-Q4_0.gguf -ngl 99 \
        -sm row -p 2048 -n 128 -r 2 > "$L/llama_tp$n.log" 2>&1
      grep -E "\|" "$L/llama_tp$n.log"
    done
  else
    tail -5 "$L/llbuild.log"
  fi
fi
if has train; then
  el "lora on GPU ranks"
  W=/tmp/tptrain; mkdir -p "$W/data"
  python3 - "$W/data" <<'PY'
import sys
names, things = ["Lily", "Tom", "Sue", "Ben"], ["ball", "kite", "cat", "dog", "box", "cake"]
for split, first, count in [("train", 0, 120), ("valid", 500, 16), ("test", 600, 16)]:
    with open(f"{sys.argv[1]}/{split}.jsonl", "w") as f:
        for i in range(first, first + count):
            n, t = names[i % 4], things[(i // 4) % 6]
            f.write('{"text": "%s had a %s. %s took the %s to the park."}\n' % (n, t, n, t))
PY
  for type in lora full; do
    for n in 1 2; do
      [ "$n" -le "$GPUS" ] || continue
      timeout 200 "$B/lmx" lora --device cuda --model "$D/stories" --data "$W/data" --train --test --iters 20 \
        --batch-size 4 --learning-rate 2e-4 --fine-tune-type $type --tensor-parallel $n --adapter-path "$W/$type$n" \
        > "$L/lora_${type}_tp$n.log" 2>&1
      echo "$type TP $n: rc=$? $(grep -E 'Test loss' "$L/lora_${type}_tp$n.log")"
    done
  done
fi
el done
