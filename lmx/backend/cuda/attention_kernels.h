// Launcher of the CUDA attention kernel (plain C++17, no lmx includes; launch_args.h):
// dense K / V (f32, f16, bf16) or MLX-quantized rows of a quantized KV cache.
#pragma once

#include <cuda_runtime.h>

#include "lmx/backend/cuda/launch_args.h"

namespace lmx::cuda::detail {

// The largest head_dim / v_head_dim the kernel takes.
constexpr int64_t kMaxAttentionHeadDim = 512;

// Asynchronous on `stream`; returns the launch's error.
cudaError_t launch_attention(const Attention& a, cudaStream_t stream);

}  // namespace lmx::cuda::detail
