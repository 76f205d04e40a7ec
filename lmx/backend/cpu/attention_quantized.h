// Scaled dot-product attention over keys and values stored MLX-affine-quantized along
// head_dim (a quantized KV cache). Keys and values are dequantized one block of
// positions at a time inside an online-softmax loop, never the whole cache at once.
#pragma once

#include <cstdint>

#include "lmx/backend/cpu/attention.h"

namespace lmx::cpu {

// One quantized operand [batch, kv_heads, kv_len, dim]: row (b, h, j) holds `dim`
// values as dim * bits / 32 uint32 words and dim / group f32 scales and biases.
struct QuantizedRows {
  const uint32_t* w = nullptr;
  const float* scales = nullptr;
  const float* biases = nullptr;
  int64_t w_strides[3] = {0, 0, 0};  // in words, for (batch, head, position)
  int64_t s_strides[3] = {0, 0, 0};  // in elements, for scales and biases alike
  int bits = 8;
};

struct QuantizedAttentionArgs {
  int64_t batch = 1;
  int64_t q_heads = 1;
  int64_t kv_heads = 1;
  int64_t q_len = 1;
  int64_t kv_len = 0;
  int64_t head_dim = 0;
  int64_t v_head_dim = 0;
  int group_size = 64;
  const float* q = nullptr;  // [batch, q_heads, q_len, head_dim]
  int64_t q_strides[4] = {0, 0, 0, 1};
  QuantizedRows k, v;
  float* out = nullptr;  // [batch, q_heads, q_len, v_head_dim]
  int64_t out_strides[4] = {0, 0, 0, 1};
};

// Same semantics as scaled_dot_product_attention (causal / window / additive mask /
// softcap / sinks from `options`) with K and V dequantized exactly as
// dequantize_affine does (scale * q + bias in f32).
void quantized_scaled_dot_product_attention(const QuantizedAttentionArgs& args,
                                            const AttentionOptions& options,
                                            ThreadPool& pool);

}  // namespace lmx::cpu
