#!/usr/bin/env bash
# Builds llama-bench and llama-quantize for CUDA sm_90 from the trimmed llama.cpp source that
# tools/device/pack.sh packs (.devdata/llstage.tar.xz) into /tmp/llb, on the device machine, at
# low priority (run it in the background while the GPU steps run). Logs: LOG_DIR/llcfg.log and
# LOG_DIR/llbuild.log, which ends with LLBUILD_RC=<status> when done.
# Usage: build_llama_bench.sh DEVDATA LOG_DIR [JOBS]
set -u
D=$1 L=$2 J=${3:-12}
mkdir -p /tmp/ll && tar xJf "$D/llstage.tar.xz" -C /tmp/ll
nice -n 19 cmake -S /tmp/ll -B /tmp/llb -G Ninja -DCMAKE_BUILD_TYPE=Release -DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 \
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_APP=OFF -DGGML_NATIVE=ON \
  -DLLAMA_CURL=OFF > "$L/llcfg.log" 2>&1 &&
  nice -n 19 cmake --build /tmp/llb -j "$J" --target llama-bench llama-quantize > "$L/llbuild.log" 2>&1
echo "LLBUILD_RC=$?" >> "$L/llbuild.log"
