#!/bin/bash
# LoRA training on the GPU: `lmx lora --device cuda` against PyTorch + PEFT on the same
# random-weight bf16 model (a config's shape, Qwen2.5-0.5B by default), rank 8 on every
# Linear of the last 16 blocks, batch 4 x 512 tokens, fp32 adapters and AdamW state on
# both sides. Prints a table of training tokens/s (steady steps, after warm-up) and peak
# GPU memory (lmx: its CUDA allocator's peak; torch: max_memory_allocated). Each step is
# bounded by a timeout; the whole run takes well under 3 minutes on one H100.
#
#   tools/bench/lora_gpu_compare.sh [LMX] [OUT]
#     LMX     the lmx binary (default build-cuda/apps/lmx/lmx)
#     OUT     where logs go (default a temp folder)
#   LMX_VARIANTS="default f32_backward" (the lmx runs), SKIP_PEFT=1 (no torch run)
#   CONFIG=...json   the model's config (default ../shared/data/configs/qwen2.5-0.5b.json)
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
LMX=${1:-$ROOT/build-cuda/apps/lmx/lmx}
OUT=${2:-$(mktemp -d)}
CONFIG=${CONFIG:-$ROOT/../shared/data/configs/qwen2.5-0.5b.json}
PY=${PYTHON:-python3}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$OUT"

echo "== model: random bf16 weights of $(basename "$CONFIG")"
timeout 60 "$PY" "$ROOT/tools/bench/lora_gpu_peft.py" make "$CONFIG" "$WORK/model" 2>&1 | tail -1
[ -f "$WORK/model/config.json" ] || { echo "model not made"; exit 1; }
# A word-level tokenizer of 64 words (ids below any vocabulary size): speed does not
# depend on the text.
"$PY" - "$WORK/model" <<'EOF'
import json, os, sys
words = [f"w{i}" for i in range(64)]
vocab = {"<|endoftext|>": 0, "<unk>": 1, " ": 2}
vocab.update({w: i + 3 for i, w in enumerate(words)})
tok = {"version": "1.0", "truncation": None, "padding": None,
       "added_tokens": [{"id": 0, "content": "<|endoftext|>", "single_word": False, "lstrip": False,
                         "rstrip": False, "normalized": False, "special": True}],
       "normalizer": None,
       "pre_tokenizer": {"type": "Split", "pattern": {"Regex": "\\w+|[^\\w\\s]|\\s+"}, "behavior": "Isolated",
                         "invert": False},
       "post_processor": None, "decoder": None,
       "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "<unk>"}}
json.dump(tok, open(os.path.join(sys.argv[1], "tokenizer.json"), "w"))
json.dump({"eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>", "unk_token": "<unk>"},
          open(os.path.join(sys.argv[1], "tokenizer_config.json"), "w"))
EOF

# 16 train and 4 valid records of ~800 words (> 512 tokens each: every batch is 4 x 512).
"$PY" - "$WORK/data" "$WORK/model/tokenizer.json" <<'EOF'
import json, os, random, sys
os.makedirs(sys.argv[1], exist_ok=True)
vocab = [w for w in json.load(open(sys.argv[2]))["model"]["vocab"] if w.startswith("w")]
rng = random.Random(0)
for split, n in (("train", 16), ("valid", 4)):
    with open(os.path.join(sys.argv[1], split + ".jsonl"), "w") as f:
        for _ in range(n):
            f.write(json.dumps({"text": " ".join(rng.choice(vocab) for _ in range(800))}) + "\n")
EOF

# --max-seq-length 513: inputs of 512 tokens (tokens[:-1]), as the torch side's. Twice: as
# shipped (the base's input gradients as bf16 GEMMs), and with them as f32 GEMMs
# (LMX_TRAIN_BF16_BACKWARD=0, the default before session 20).
for variant in ${LMX_VARIANTS:-default f32_backward}; do
  echo "== lmx lora --device cuda ($variant)"
  LMX_TRAIN_BF16_BACKWARD=$([ $variant = f32_backward ] && echo 0 || echo 1) \
  timeout ${LMX_TIMEOUT:-75} "$LMX" lora --device cuda --model "$WORK/model" --train --data "$WORK/data" --batch-size 4 \
    --max-seq-length 513 --num-layers 16 --rank 8 --iters 6 --steps-per-report 3 --steps-per-eval 0 \
    --val-batches 1 --save-every 0 --adapter-path "$WORK/adapters" --learning-rate 1e-5 --optimizer adamw \
    > "$OUT/lmx_lora_$variant.log" 2>&1
  echo "lmx rc=$?"
  tail -6 "$OUT/lmx_lora_$variant.log"
done

echo "== PyTorch + PEFT"
[ -n "${SKIP_PEFT:-}" ] && echo "skipped (SKIP_PEFT)" > "$OUT/peft.log" || timeout 90 "$PY" "$ROOT/tools/bench/lora_gpu_peft.py" bench "$WORK/model" --batch 4 --seq 512 --rank 8 \
  --layers 16 --steps 3 --warmup 2 > "$OUT/peft.log" 2>&1
echo "peft rc=$?"
tail -3 "$OUT/peft.log"

"$PY" - "$OUT/lmx_lora_default.log" "$OUT/lmx_lora_f32_backward.log" "$OUT/peft.log" <<'EOF'
import os, re, sys
rows = []
for path, name in ((sys.argv[1], "lmx lora --device cuda"),
                   (sys.argv[2], "lmx lora --device cuda, LMX_TRAIN_BF16_BACKWARD=0")):
    text = open(path).read() if os.path.exists(path) else ""
    it = re.findall(r"Iter (\d+): train loss ([\d.]+).*?tokens/s ([\d.]+).*?peak memory (.+)", text)
    if it:
        n, loss, tps, peak = it[-1]
        rows.append((name, tps, peak.strip(), f"iterations {int(n) - 2}-{n}, train loss {loss}"))
    else:
        rows.append((name, "failed", "-", "see " + path))
peft = open(sys.argv[3]).read()
m = re.search(r"RESULT peft tokens_per_s ([\d.]+) peak_gib ([\d.]+) .*?torch (\S+) transformers (\S+) peft (\S+) device (.+)", peft)
if m:
    rows.append((f"torch {m.group(3)} + peft {m.group(5)}", m.group(1), m.group(2) + " GiB", m.group(6)))
else:
    rows.append(("torch + peft", "failed", "-", "see peft.log"))
print()
print("| trainer | tokens/s | peak GPU memory | note |")
print("|---|---|---|---|")
for r in rows:
    print("| " + " | ".join(r) + " |")
EOF
