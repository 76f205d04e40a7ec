// Prefill attention on the tensor cores (plain C++17, no lmx includes; launch_args.h):
// bf16 K / V with q rounded to bf16, scores and the output accumulated in f32 (mma.sync
// m16n8k16), an online softmax per row. bf16 K / V is the caller's consent to bf16
// products: nn::Attention passes them for prompts of models with bf16 / f16 weights.
#pragma once

#include <cuda_runtime.h>

#include "lmx/backend/cuda/launch_args.h"

namespace lmx::cuda::detail {

// Whether launch_flash_attention takes `a`: dense bf16 K / V, at least 16 query rows,
// head_dim and v_head_dim up to 256, and switched on (lmx::cuda_flash_attention()).
// Every option is covered (causal with q_offset, window, soft-cap, additive mask, sinks).
bool flash_attention_takes(const Attention& a);

// Asynchronous on `stream`; returns the launch's error.
cudaError_t launch_flash_attention(const Attention& a, cudaStream_t stream);

}  // namespace lmx::cuda::detail
