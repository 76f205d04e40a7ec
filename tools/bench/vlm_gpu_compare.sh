#!/bin/bash
# lmx against transformers (bf16, SDPA) on the GPU, Qwen2-VL-2B's shape with random weights: one
# 448x448 image and 16 text tokens, the vision encoder alone and the first token of the whole
# prompt (vision tower, merger and text prefill; logits of the last position, no KV cache),
# CUDA-synchronised medians of 7 runs after warm-ups, both on the same weights (transformers
# makes the random model and saves it; lmx loads that folder). Run from the repository root on
# the GPU machine:
#   LMX=build-cuda/apps/lmx/lmx tools/bench/vlm_gpu_compare.sh WORK_DIR OUT_DIR
# Four timed processes in turn: transformers, lmx, transformers, lmx; then one lmx run under
# LMX_CUDA_PROFILE (per-op launch counts and device time; not a timing). Writes hf_1.json,
# lmx_1.json, hf_2.json, lmx_2.json, lmx_profile.txt and summary.txt to OUT_DIR. PAIRS=1: the first
# transformers / lmx pair only.
set -u
W=${1:?work dir}
O=${2:?out dir}
: "${LMX:?set LMX to an lmx built with -DLMX_CUDA=ON}"
RUNS=${RUNS:-7}
mkdir -p "$W" "$O"
bench() {
  timeout 120 "$LMX" bench --model "$W/model" --image "$W/image.png" --device cuda -p 16 -n "$1" --json
}
timeout 180 python3 tools/bench/qwen2vl_hf_cuda_bench.py make "$W" --runs "$RUNS" > "$O/hf_1.json" 2> "$O/hf_1.err"
echo "transformers (make) rc=$?"; tail -3 "$O/hf_1.err"
ls -la "$W/model" 2>&1 | head -20
bench "$RUNS" > "$O/lmx_1.json" 2> "$O/lmx_1.err"; echo "lmx rc=$?"; tail -3 "$O/lmx_1.err"
if [ "${PAIRS:-2}" -ge 2 ]; then  # PAIRS=1: the first pair only (a short device call)
  timeout 120 python3 tools/bench/qwen2vl_hf_cuda_bench.py time "$W" --runs "$RUNS" > "$O/hf_2.json" 2> "$O/hf_2.err"
  echo "transformers (load) rc=$?"; tail -3 "$O/hf_2.err"
  bench "$RUNS" > "$O/lmx_2.json" 2> "$O/lmx_2.err"; echo "lmx rc=$?"; tail -3 "$O/lmx_2.err"
fi
# Not part of the pairs: one run under the profile.
LMX_CUDA_PROFILE=1 bench 2 > /dev/null 2> "$O/lmx_profile.txt"; echo "lmx profile rc=$?"
python3 - "$O" <<'PY' | tee "$O/summary.txt"
import json, os, sys
o = sys.argv[1]
def load(name):
    try:
        return json.loads(open(os.path.join(o, name)).read().strip().splitlines()[-1])
    except Exception as e:  # noqa: BLE001
        print(name, "unreadable:", repr(e))
        return None
for i in (1, 2):
    if not os.path.exists(os.path.join(o, "hf_%d.json" % i)):
        continue
    hf, lm = load("hf_%d.json" % i), load("lmx_%d.json" % i)
    if hf:
        print("pair %d transformers: encoder %.2f ms, first token %.2f ms (%d tokens, %s, %s attn, transformers %s, %s)"
              % (i, hf["encoder_ms"], hf["first_token_ms"], hf["prompt_tokens"], hf["dtype"], hf["attn"],
                 hf["transformers"], hf["device"]))
    if lm:
        print("pair %d lmx:          encoder %.2f ms, first token %.2f ms (%d tokens, pixel_values %s, %s)"
              % (i, lm["vision_encoder_ms"], lm["prefill_ms"], lm["prompt_tokens"], lm["pixel_values"], lm["device"]))
    if hf and lm:
        print("pair %d speed-up lmx / transformers: encoder %.2fx, encoder + prefill %.2fx"
              % (i, hf["encoder_ms"] / lm["vision_encoder_ms"], hf["first_token_ms"] / lm["prefill_ms"]))
PY
