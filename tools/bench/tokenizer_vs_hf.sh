#!/usr/bin/env bash
# lmx vs Hugging Face `tokenizers`: builds bench/tokenizer_bench (Release, only that
# target), then runs tools/bench/tokenizer_vs_hf.py (encode / decode MB/s, load time,
# ids checked equal) single-threaded on both sides. Writes $OUT/tokenizer_bench.md
# when OUT is set. No network needed.
#
#   tools/bench/tokenizer_vs_hf.sh [args for tokenizer_vs_hf.py, e.g. --mb 2 --only qwen3]
#   tools/bench/tokenizer_vs_hf.sh --pack   # here: .cache/npm-tokenizers -> one .tar.xz
#
# The npm tokenizers (~100 MB) come from .cache/npm-tokenizers/ or, when that is
# missing, from .cache/npm-tokenizers.tar.xz (made by --pack; small enough to carry).
set -euo pipefail

root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
npm_dir=.cache/npm-tokenizers
archive=.cache/npm-tokenizers.tar.xz
names=(llama3 qwen3 gemma3 deepseek_v3 gptoss llama2)

if [[ "${1:-}" == "--pack" ]]; then
  files=()
  for n in "${names[@]}"; do
    [[ -f $npm_dir/$n/tokenizer.json ]] || { echo "missing $npm_dir/$n/tokenizer.json (tools/fetch_npm_tokenizers.sh)" >&2; exit 1; }
    files+=("$n/tokenizer.json")
  done
  XZ_OPT=-6T2 tar -C "$npm_dir" -cJf "$archive" "${files[@]}"
  echo "wrote $archive ($(du -h "$archive" | cut -f1))"
  exit 0
fi

if [[ ! -f $npm_dir/qwen3/tokenizer.json && -f $archive ]]; then
  echo "unpacking $archive into $npm_dir"
  mkdir -p "$npm_dir"
  tar -C "$npm_dir" -xJf "$archive"
fi

missing=0
for tool in cmake ninja python3; do
  command -v "$tool" >/dev/null || { echo "ERROR: $tool not found (tools/setup.sh installs the build tools)" >&2; missing=1; }
done
[[ $missing == 0 ]] || exit 1

build="${LMX_TOKBENCH_BUILD:-$root/build-tokbench}"
jobs="$(nproc 2>/dev/null || echo 2)"
echo "building tokenizer_bench in $build ($jobs jobs)"
t0=$(date +%s)
# A fresh build dir gets the minimal configuration; an existing one keeps its own.
options=()
[[ -f $build/CMakeCache.txt ]] || options=(-G Ninja -DCMAKE_BUILD_TYPE=Release -DLMX_CUDA=OFF
  -DLMX_BUILD_TESTS=OFF -DLMX_BUILD_BENCH=ON)
mkdir -p "$build"
if ! cmake -S "$root" -B "$build" "${options[@]}" >"$build/configure.log" 2>&1; then
  tail -20 "$build/configure.log" >&2
  echo "ERROR: cmake configure failed (log: $build/configure.log)" >&2
  exit 1
fi
ninja -C "$build" -j"$jobs" tokenizer_bench
echo "built in $(($(date +%s) - t0)) s"

export RAYON_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false OMP_NUM_THREADS=1
exec python3 "$root/tools/bench/tokenizer_vs_hf.py" --bench "$build/bench/tokenizer_bench" \
  --repo "$root" "$@"
