// Launcher of the CUDA attention kernel (plain C++17, no lmx includes; launch_args.h):
// dense K / V (f32, f16, bf16) or MLX-quantized rows of a quantized KV cache.
#pragma once

#include <cuda_runtime.h>

#include "lmx/backend/cuda/launch_args.h"

namespace lmx::cuda::detail {

// The largest head_dim / v_head_dim the kernel takes.
constexpr int64_t kMaxAttentionHeadDim = 512;

// Floats of device scratch launch_attention needs for `a` (0: none): the partial results
// of rows whose keys are split across blocks.
int64_t attention_scratch_floats(const Attention& a);

// Asynchronous on `stream`; returns the launch's error. `scratch` holds
// attention_scratch_floats(a) floats and may be reused once this launch's work is queued.
cudaError_t launch_attention(const Attention& a, float* scratch, cudaStream_t stream);

}  // namespace lmx::cuda::detail
