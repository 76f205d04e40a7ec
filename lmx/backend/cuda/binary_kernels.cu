// Element-wise f32 binary ops: a grid-stride loop.
#include "lmx/backend/cuda/binary_kernels.h"

namespace lmx::cuda::detail {
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
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (; i < n; i += stride) out[i] = apply<Op>(a[i], b[i]);
}

template <int Op>
cudaError_t launch(const float* a, const float* b, float* out, int64_t n) {
  const int threads = 256;
  int64_t blocks = (n + threads - 1) / threads;
  if (blocks > 65535 * 8) blocks = 65535 * 8;
  binary_kernel<Op><<<static_cast<unsigned>(blocks), threads>>>(a, b, out, n);
  return cudaGetLastError();
}

}  // namespace

cudaError_t launch_binary_f32(int op, const float* a, const float* b, float* out, int64_t n) {
  switch (op) {
    case 0: return launch<0>(a, b, out, n);
    case 1: return launch<1>(a, b, out, n);
    case 2: return launch<2>(a, b, out, n);
    default: return launch<3>(a, b, out, n);
  }
}

}  // namespace lmx::cuda::detail
