#!/usr/bin/env bash
# The main job (README's first command): generate text with a real model.
# With ../shared/data beside the checkout, that is Karpathy's stories260K imported from
# its llama2.c checkpoint; otherwise MODEL=<model folder or Hugging Face repo id>.
set -euo pipefail
build=${1:-build}
lmx="$build/apps/lmx/lmx"
prompt=${PROMPT:-"Once upon a time"}
if [ -n "${MODEL:-}" ]; then
  exec "$lmx" generate --model "$MODEL" --prompt "$prompt" --max-tokens "${MAX_TOKENS:-200}" --verbose
fi
src="$(dirname "$0")/../../shared/data/models/stories260K"
if [ ! -f "$src/stories260K.bin" ]; then
  echo "demo: no model given. Run: make demo MODEL=/path/to/model-folder (or MODEL=org/name, a Hugging Face repo id)" >&2
  exit 2
fi
model="$build/models/stories260K"
if [ ! -f "$model/model.safetensors" ]; then
  "$lmx" convert --from-llama2c "$src/stories260K.bin" --tokenizer "$src/tok512.bin" --out "$model"
fi
"$lmx" generate --model "$model" --prompt "$prompt" --max-tokens "${MAX_TOKENS:-200}" --temp 0 --verbose
