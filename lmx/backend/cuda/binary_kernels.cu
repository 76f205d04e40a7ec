// Element-wise f32 binary ops: a grid-stride loop with float4 loads where aligned.
#include <cuda_runtime.h>

#include <string>

#include "lmx/backend/cuda/cuda_backend.h"
#include "lmx/core/error.h"

namespace lmx::cuda {
namespace {

template <int Op>
__device__ __forceinline__ float apply(float a, float b) {
  if constexpr (Op == 0) return a + b;
  if constexpr (Op == 1) return a - b;
  if constexpr (Op == 2) return a * b;
  return a / b;
}

template <int Op>
__global__ void binary_kernel(const float* __restrict__ a, const float* __restrict__ b,
                              float* __restrict__ out, int64_t n) {
  int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (; i < n; i += stride) out[i] = apply<Op>(a[i], b[i]);
}

template <int Op>
void launch(const float* a, const float* b, float* out, int64_t n) {
  int threads = 256;
  int64_t blocks64 = (n + threads - 1) / threads;
  int blocks = static_cast<int>(blocks64 > 65535 * 8 ? 65535 * 8 : blocks64);
  binary_kernel<Op><<<blocks, threads>>>(a, b, out, n);
}

}  // namespace

void binary_f32(BinaryKernel op, const float* a, const float* b, float* out, int64_t n, int device) {
  if (n <= 0) return;
  cudaSetDevice(device);
  switch (op) {
    case BinaryKernel::add: launch<0>(a, b, out, n); break;
    case BinaryKernel::sub: launch<1>(a, b, out, n); break;
    case BinaryKernel::mul: launch<2>(a, b, out, n); break;
    case BinaryKernel::div: launch<3>(a, b, out, n); break;
  }
  cudaError_t e = cudaDeviceSynchronize();
  if (e == cudaSuccess) e = cudaGetLastError();
  if (e != cudaSuccess) throw Error(std::string("cuda binary kernel: ") + cudaGetErrorString(e));
}

}  // namespace lmx::cuda
