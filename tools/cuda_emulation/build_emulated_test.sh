#!/usr/bin/env bash
# Builds backend_cuda_test against a CPU emulation of CUDA (include/: the runtime, fp16,
# cuBLAS as naive column-major loops), to check the CUDA backend's kernel logic on a
# machine without a GPU. Every CUDA thread is a host thread (blocks run one after the
# other, __syncthreads and warp shuffles are barriers), so it is slow and says nothing
# about speed, memory ordering across streams or the real runtime: it is no substitute
# for running tests/backend/cuda on a GPU.
#
# Usage: tools/cuda_emulation/build_emulated_test.sh [build-cuda dir] [out dir]
# The build dir must hold a -DLMX_CUDA=ON build of backend_cuda_test (its test objects
# and the lmx libraries are reused; only lmx/backend/cuda is rebuilt, emulated).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=$(cd "${1:-$root/build-cuda}" && pwd)
out=$(mkdir -p "${2:-$build/cuda_emulation}" && cd "${2:-$build/cuda_emulation}" && pwd)
flags="-std=c++20 -O2 -ffp-contract=off -pthread -I$here/include -I$root -w"
mkdir -p "$out/src" "$out/obj"
for cu in "$root"/lmx/backend/cuda/*.cu; do
  name=$(basename "$cu" .cu)
  python3 "$here/convert_launches.py" "$cu" "$out/src/$name.cpp"
  g++ $flags -c "$out/src/$name.cpp" -o "$out/obj/$name.o"
done
for cpp in "$root"/lmx/backend/cuda/*.cpp; do
  g++ $flags -c "$cpp" -o "$out/obj/$(basename "$cpp" .cpp).o"
done
rm -f "$out/libemulated_cuda_backend.a"
ar rcs "$out/libemulated_cuda_backend.a" "$out"/obj/*.o
tests=$build/tests/backend/cuda/CMakeFiles/backend_cuda_test.dir
backend=$out/libemulated_cuda_backend.a
g++ -O2 -pthread "$tests"/*.cpp.o -o "$out/backend_cuda_test_emulated" \
  "$build/lmx/core/liblmx_core.a" "$backend" "$build/lmx/models/liblmx_models.a" \
  -lgtest -lgtest_main "$build/lmx/nn/liblmx_nn.a" "$build/lmx/io/liblmx_io.a" \
  "$build/lmx/core/liblmx_core.a" "$backend" "$build/lmx/backend/cpu/liblmx_backend_cpu.a" \
  "$build/lmx/base/liblmx_base.a" -lcurl -lpthread -ldl
echo "$out/backend_cuda_test_emulated"
