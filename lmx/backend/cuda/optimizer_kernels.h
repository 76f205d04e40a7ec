// Optimizer updates on the GPU, computing what lmx/core/kernel_args.h's AdamStepArgs
// states (each operation rounded to f32 in its order: the CPU's result bit for bit).
// Plain C++17, no lmx includes (launch_args.h's conventions).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace lmx::cuda::detail {

// kernels::AdamStepArgs.
struct AdamStep {
  const float *w = nullptr, *g = nullptr;
  float *m = nullptr, *v = nullptr, *w_out = nullptr;
  int64_t n = 0;
  float beta1 = 0, one_minus_beta1 = 0, beta2 = 0, one_minus_beta2 = 0;
  float m_divisor = 1, v_divisor = 1, decay = 1, eps = 0, lr = 0;
};
cudaError_t launch_adam_step(const AdamStep& a, cudaStream_t stream);

}  // namespace lmx::cuda::detail
