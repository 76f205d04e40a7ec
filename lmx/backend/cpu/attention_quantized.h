// Scaled dot-product attention over keys and values stored MLX-affine-quantized along
// head_dim (a quantized KV cache). Keys and values are dequantized one block of
// positions at a time inside an online-softmax loop, never the whole cache at once.
#pragma once

#include <cstdint>

#include "lmx/backend/cpu/attention.h"

namespace lmx::cpu {

using kernels::QuantizedRows;
using kernels::QuantizedAttentionArgs;



// Same semantics as scaled_dot_product_attention (causal / window / additive mask /
// softcap / sinks from `options`) with K and V dequantized exactly as
// dequantize_affine does (scale * q + bias in f32).
void quantized_scaled_dot_product_attention(const QuantizedAttentionArgs& args,
                                            const AttentionOptions& options,
                                            ThreadPool& pool);

}  // namespace lmx::cpu
