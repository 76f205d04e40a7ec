#include "lmx/backend/cuda/optimizer_kernels.h"

#include "lmx/backend/cuda/device_values.cuh"

namespace lmx::cuda::detail {
namespace {

// The _rn intrinsics keep each operation apart (nvcc would otherwise fuse a multiply and
// an add into one FMA, one rounding fewer than the CPU's), and the division and square
// root are IEEE round-to-nearest as the CPU's.
__global__ void adam_step_kernel(AdamStep a) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < a.n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const float g = a.g[i];
    const float m = __fadd_rn(__fmul_rn(a.m[i], a.beta1), __fmul_rn(g, a.one_minus_beta1));
    const float v = __fadd_rn(__fmul_rn(a.v[i], a.beta2), __fmul_rn(__fmul_rn(g, g), a.one_minus_beta2));
    a.m[i] = m, a.v[i] = v;
    const float update =
        __fdiv_rn(__fdiv_rn(m, a.m_divisor), __fadd_rn(__fsqrt_rn(__fdiv_rn(v, a.v_divisor)), a.eps));
    a.w_out[i] = __fsub_rn(__fmul_rn(a.w[i], a.decay), __fmul_rn(update, a.lr));
  }
}

}  // namespace

cudaError_t launch_adam_step(const AdamStep& a, cudaStream_t stream) {
  if (a.n <= 0) return cudaSuccess;
  adam_step_kernel<<<grid_for(a.n, 256), 256, 0, stream>>>(a);
  return cudaGetLastError();
}

}  // namespace lmx::cuda::detail
