#!/usr/bin/env bash
# lmx against llama.cpp's llama-mtmd-cli on the CPU, one thread each, on the same random
# Qwen2-VL weights (tools/bench/random_qwen2vl.py: a Hugging Face folder for lmx, a text GGUF
# and an mmproj GGUF for llama.cpp) and the same 448x448 image (256 image tokens).
#   LMX=build/apps/lmx/lmx LLAMA=/work/llama [RUNS=5] tools/bench/vlm_llama_compare.sh [WORK_DIR]
# LLAMA: a llama.cpp source tree whose build-cpu/bin holds libmtmd, libllama-common and
# libllama (node-llama-cpp's bundle builds them); llama-mtmd-cli is compiled from its
# tools/mtmd/mtmd-cli.cpp against them when WORK_DIR has none.
# Prints, per run: llama.cpp's image encode ms (its "mtmd batch encoding done"), image batch
# decode ms and prompt eval tokens/s (279 tokens: the image's 256 and the chat around them),
# lmx's (`lmx bench --image -t 1`, same 279 tokens) preprocessing ms, vision encoder ms and
# prefill tokens/s with the encoder; and the first two greedy tokens of both (parity: the
# same random weights must give the same tokens).
set -euo pipefail
LMX=${LMX:?set LMX to an lmx binary}
LLAMA=${LLAMA:-/work/llama}
RUNS=${RUNS:-5}
work=${1:-$(mktemp -d)}
mkdir -p "$work"
lib=$LLAMA/build-cpu/bin
if [ ! -x "$work/llama-mtmd-cli" ]; then
  c++ -O2 -DGGML_BACKEND_SHARED -DGGML_SHARED -DGGML_USE_CPU -DLLAMA_SHARED \
      -I"$LLAMA/src/tools/mtmd" -I"$LLAMA/src/include" -I"$LLAMA/src/ggml/include" -I"$LLAMA/src/common" \
      -I"$LLAMA/src/vendor" -o "$work/llama-mtmd-cli" "$LLAMA/src/tools/mtmd/mtmd-cli.cpp" \
      -L"$lib" -Wl,-rpath,"$lib" -lmtmd -lllama-common -lllama -lggml -lggml-base -lpthread
fi
[ -f "$work/text.gguf" ] || PYTHONPATH="$LLAMA/src/gguf-py" "${PYTHON:-python3}" "$(dirname "$0")/random_qwen2vl.py" "$work"
[ -f "$work/img448.png" ] || ffmpeg -nostdin -v error -y -f lavfi -i "testsrc2=size=448x448" -frames:v 1 "$work/img448.png"
echo "load: $(uptime | sed 's/.*load average: //')"
"$LMX" bench kernels --quick --filter none 2>/dev/null | head -1 || true
for run in $(seq "$RUNS"); do
  out=$("$work/llama-mtmd-cli" -m "$work/text.gguf" --mmproj "$work/mmproj.gguf" --image "$work/img448.png" \
        -p hi -n 2 -t 1 --temp 0 -v 2>&1)
  enc=$(sed -n 's/.*mtmd batch encoding done in \([0-9.]*\) ms.*/\1/p' <<<"$out")
  dec=$(sed -n 's/.*image decoded (batch 1\/1) in \([0-9.]*\) ms.*/\1/p' <<<"$out")
  pp=$(sed -n 's/.*prompt eval time = *[0-9.]* ms \/ *\([0-9]*\) tokens.*, *\([0-9.]*\) tokens per second.*/\1 tokens \2 tok\/s/p' <<<"$out")
  echo "llama.cpp run $run: image encode $enc ms, image batch decode $dec ms, prompt eval $pp"
  "$LMX" bench --model "$work/hf" --image "$work/img448.png" -t 1 -n 3 -p 23 \
    | sed -n 's/^image preprocessing.*: \(.*\) ms/  lmx preprocessing \1 ms/p; s/^vision encoder.*: \(.*\) ms/  lmx vision encoder \1 ms/p; s/^prefill of \([0-9]*\) tokens.*: \(.*\) tokens\/s/  lmx prefill \1 tokens \2 tok\/s/p'
done
echo "load: $(uptime | sed 's/.*load average: //')"
# Parity: llama.cpp's two greedy tokens (its text, as bytes) and lmx's top-1 for the same ids.
"$LMX" preprocess --model "$work/hf" --image "$work/img448.png" --out "$work/pv.safetensors" >/dev/null
ids="254,117,115,101,114,10,252$(printf ',250%.0s' $(seq 256)),253,104,105,255,10,254,97,115,115,105,115,116,97,110,116,10"
first=$("$LMX" logits --model "$work/hf" --tokens "$ids" --pixel-values "$work/pv.safetensors" | sed -n 's/^top-5: \([0-9]*\).*/\1/p')
second=$("$LMX" logits --model "$work/hf" --tokens "$ids,$first" --pixel-values "$work/pv.safetensors" | sed -n 's/^top-5: \([0-9]*\).*/\1/p')
text=$("$work/llama-mtmd-cli" -m "$work/text.gguf" --mmproj "$work/mmproj.gguf" --image "$work/img448.png" \
       -p hi -n 2 -t 1 --temp 0 2>/dev/null | tail -c 64 | od -An -tu1 | tr -s ' \n' ' ')
echo "lmx greedy tokens: $first $second (byte values); llama.cpp's generated text, last bytes: $text"
