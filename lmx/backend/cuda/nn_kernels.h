// Launchers of the row-wise CUDA kernels (softmax, norms) and RoPE: plain C++17, no lmx
// includes (launch_args.h). Asynchronous on `stream`; they return the launch's error.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "lmx/backend/cuda/launch_args.h"

namespace lmx::cuda::detail {

// A per-channel vector (kernels::ChannelVector): null data means absent.
struct Channel {
  const void* data = nullptr;
  int dtype = kF32;
};

cudaError_t launch_softmax(const float* x, int64_t rows, int64_t dim, int64_t ldx, float* out, int64_t ldo,
                           bool log, cudaStream_t stream);
// kernels::RmsNormOptions' fused residual add: sum = x + residual, normed in place of x.
struct FusedResidual {
  const float* residual = nullptr;
  int64_t ld_residual = 0;
  float* sum = nullptr;
  int64_t ld_sum = 0;
};
cudaError_t launch_rms_norm(const float* x, int64_t rows, int64_t dim, int64_t ldx, float* out, int64_t ldo,
                            Channel weight, bool add_unit_offset, float eps, const FusedResidual& fused,
                            cudaStream_t stream);
cudaError_t launch_layer_norm(const float* x, int64_t rows, int64_t dim, int64_t ldx, float* out, int64_t ldo,
                              Channel weight, Channel bias, float eps, cudaStream_t stream);
cudaError_t launch_rope(const float* x, float* out, const Rope& r, cudaStream_t stream);
// out[r, v] = (exp(logits[r, v] - lse[r]) - (v == targets[r])) * coef[r] (kernels::CrossEntropyGradArgs).
cudaError_t launch_cross_entropy_grad(const float* logits, const float* lse, const int64_t* targets, const float* coef,
                                      float* out, int64_t rows, int64_t vocab, cudaStream_t stream);

}  // namespace lmx::cuda::detail
