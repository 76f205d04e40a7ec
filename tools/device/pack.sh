#!/usr/bin/env bash
# Packs what a GPU device call needs into .devdata/ (ignored: add "/.devdata/" to .git/info/exclude):
# the CUDA build's test / CLI / benchmark binaries with the Debian libraries they link (stripped,
# xz), the configs and vocabulary of ../shared/data the benchmarks read (../shared does not travel),
# stories260K imported, and llama.cpp's source trimmed to what llama-bench / llama-quantize with
# CUDA need (from node-llama-cpp 3.22.1's bundle, checked out at $LLAMA_SRC).
#   cmake -S . -B build-cuda -G Ninja -DCMAKE_BUILD_TYPE=Release -DLMX_CUDA=ON
#   cmake --build build-cuda --target backend_cuda_test lmx cuda_matvec_bench cuda_attention_bench
#   LLAMA_SRC=/work/llama/src tools/device/pack.sh
# The call's working tree may hold 64 MiB: move tests/data/{vision,train,chat,tokenizer} and the
# model fixtures the CUDA tests do not read out of the tree for the call (never commit meanwhile).
set -euo pipefail
cd "$(dirname "$0")/../.."
out=.devdata
stage=$(mktemp -d)
mkdir -p "$stage/bin" "$stage/lib" "$out"
for f in build-cuda/tests/backend/cuda/backend_cuda_test build-cuda/apps/lmx/lmx build-cuda/bench/cuda_matvec_bench \
    build-cuda/bench/cuda_attention_bench; do
  cp "$f" "$stage/bin/" && strip "$stage/bin/$(basename "$f")"
done
# Libraries outside glibc / libstdc++ / CUDA (the device image has those).
for f in "$stage"/bin/*; do ldd "$f" | awk '/=> \// {print $3}'; done | sort -u | while read -r l; do
  case "$l" in
    */libc.so*|*/libm.so*|*/libpthread*|*/libdl.so*|*/librt.so*|*/libresolv*|*/ld-linux*|*/libgcc_s*|*/libstdc++*|*/libcuda*|*/libcublas*|*/libcudart*|*/libnv*) ;;
    *) cp -L "$l" "$stage/lib/" ;;
  esac
done
tar cJf "$out/bin.tar.xz" -C "$stage" bin lib
rm -rf "$stage"
mkdir -p "$out/shared/data/configs" "$out/shared/data/tokenizers/llama.cpp-vocab-gguf"
cp ../shared/data/configs/*.json "$out/shared/data/configs/"
cp ../shared/data/tokenizers/llama.cpp-vocab-gguf/ggml-vocab-gpt-2.gguf "$out/shared/data/tokenizers/llama.cpp-vocab-gguf/"
[ -f "$out/stories/model.safetensors" ] || build-cuda/apps/lmx/lmx convert \
  --from-llama2c ../shared/data/models/stories260K/stories260K.bin \
  --tokenizer ../shared/data/models/stories260K/tok512.bin --out "$out/stories"
if [ -n "${LLAMA_SRC:-}" ]; then
  ll=$(mktemp -d)
  (cd "$LLAMA_SRC" && tar cf - --exclude=.git CMakeLists.txt cmake common include src vendor gguf-py \
     ggml/CMakeLists.txt ggml/cmake ggml/include ggml/src/CMakeLists.txt ggml/src/ggml-cpu ggml/src/ggml-cuda \
     ggml/src/*.c ggml/src/*.cpp ggml/src/*.h ggml/src/*.in tools/llama-bench tools/quantize LICENSE) | tar xf - -C "$ll"
  printf 'find_package(Threads REQUIRED)\nllama_add_compile_flags()\nadd_subdirectory(llama-bench)\nadd_subdirectory(quantize)\n' \
    > "$ll/tools/CMakeLists.txt"
  tar cJf "$out/llstage.tar.xz" -C "$ll" .
  rm -rf "$ll"
fi
# LLAMA_SERVER=1: a second stage with llama-server too (tools/server, its UI target, mtmd) and
# Llama 3's vocabulary GGUF, for tools/bench/serve_gpu_compare.sh (issue 21's GPU comparison).
if [ -n "${LLAMA_SRC:-}" ] && [ -n "${LLAMA_SERVER:-}" ]; then
  ll=$(mktemp -d)
  (cd "$LLAMA_SRC" && tar cf - --exclude=.git --exclude=node_modules CMakeLists.txt cmake common include src vendor \
     gguf-py scripts/ui-assets.cmake ggml/CMakeLists.txt ggml/cmake ggml/include ggml/src/CMakeLists.txt \
     ggml/src/ggml-cpu ggml/src/ggml-cuda ggml/src/*.c ggml/src/*.cpp ggml/src/*.h ggml/src/*.in tools/llama-bench \
     tools/quantize tools/server tools/ui tools/mtmd models/ggml-vocab-llama-bpe.gguf LICENSE) | tar xf - -C "$ll"
  printf 'find_package(Threads REQUIRED)\nllama_add_compile_flags()\nadd_subdirectory(llama-bench)\nadd_subdirectory(quantize)\nadd_subdirectory(ui)\nadd_subdirectory(server)\nadd_subdirectory(mtmd)\n' \
    > "$ll/tools/CMakeLists.txt"
  tar cJf "$out/llserver.tar.xz" -C "$ll" .
  rm -rf "$ll"
fi
du -sh "$out"
