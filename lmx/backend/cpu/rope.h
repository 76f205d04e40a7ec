// Rotary position embedding over f32 activations viewed as [batch, heads, seq, head_dim].
#pragma once

#include <cstdint>

#include "lmx/backend/cpu/thread_pool.h"

namespace lmx::cpu {

struct RopeOptions {
  // Shape of x and out: [batch, heads, seq, head_dim].
  int64_t batch = 1;
  int64_t heads = 1;
  int64_t seq = 1;
  int64_t head_dim = 0;
  // Element strides of x and of out for each of the 4 dims (any layout, e.g. the
  // [batch, seq, heads, head_dim] output of a projection viewed as above).
  int64_t x_strides[4] = {0, 0, 0, 1};
  int64_t out_strides[4] = {0, 0, 0, 1};
  // Leading dims that rotate (even, <= head_dim); the rest are copied through.
  int64_t rotary_dim = 0;
  // true: pairs (2i, 2i+1) (GPT-J, MLX traditional=True). false: pairs (i, i + d/2)
  // with d = rotary_dim (HF rotate_half: Llama, Qwen, Mistral, ...).
  bool traditional = false;
  // [rotary_dim / 2] inverse frequencies of pair i; scaled RoPE variants (linear,
  // dynamic NTK, llama3, yarn, longrope) differ only in these values.
  const float* inv_freq = nullptr;
  // Position of token s in batch b: offset + batch_offsets[b] (if given) + s, or
  // positions[b * seq + s] when `positions` is given (left-padded batches, packed
  // sequences: any position per token).
  int64_t offset = 0;
  const int64_t* batch_offsets = nullptr;  // [batch] or null
  const int64_t* positions = nullptr;      // [batch, seq] contiguous, or null
  // Multiplies cos and sin (yarn / longrope attention factor); 1 for plain RoPE.
  float mscale = 1.0f;
};

// out = rope(x). x and out may alias exactly (in place, same strides).
// Angles are computed as HF does: float(position) * inv_freq[i] rounded to f32, then
// cos/sin of that f32 angle (times mscale); then
//   non-traditional: o[i] = x[i] c - x[i+d/2] s,  o[i+d/2] = x[i+d/2] c + x[i] s
//   traditional:     o[2i] = x[2i] c - x[2i+1] s, o[2i+1] = x[2i+1] c + x[2i] s.
void rope(const float* x, float* out, const RopeOptions& options, ThreadPool& pool);

}  // namespace lmx::cpu
