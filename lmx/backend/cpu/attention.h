// Scaled dot-product attention over strided q / k / v views (KV caches are views into
// larger buffers), with GQA, causal / sliding-window masks, additive masks, logit
// soft-capping and attention sinks.
#pragma once

#include <cstdint>

#include "lmx/backend/cpu/thread_pool.h"
#include "lmx/core/dtype.h"

namespace lmx::cpu {

struct AttentionArgs {
  int64_t batch = 1;
  // q_heads is a multiple of kv_heads (GQA): q head h reads kv head
  // h / (q_heads / kv_heads).
  int64_t q_heads = 1;
  int64_t kv_heads = 1;
  int64_t q_len = 1;
  int64_t kv_len = 0;
  int64_t head_dim = 0;    // of q and k
  int64_t v_head_dim = 0;  // of v and out
  // Element strides for [batch, head, seq, dim] of each operand.
  const float* q = nullptr;  // [batch, q_heads, q_len, head_dim]
  int64_t q_strides[4] = {0, 0, 0, 1};
  const void* k = nullptr;  // [batch, kv_heads, kv_len, head_dim], kv_dtype
  int64_t k_strides[4] = {0, 0, 0, 1};
  const void* v = nullptr;  // [batch, kv_heads, kv_len, v_head_dim], kv_dtype
  int64_t v_strides[4] = {0, 0, 0, 1};
  Dtype kv_dtype = Dtype::f32;  // f32, f16 or bf16 (both k and v)
  float* out = nullptr;         // [batch, q_heads, q_len, v_head_dim]
  int64_t out_strides[4] = {0, 0, 0, 1};
};

struct AttentionOptions {
  float scale = 1.0f;  // usually 1/sqrt(head_dim)
  // Causal: query i sits at absolute position q_offset + i; key j (absolute position
  // j) is visible iff j <= q_offset + i.
  bool causal = false;
  int64_t q_offset = 0;
  // Sliding window (0 = none): key j is visible iff (q_offset + i) - j < window.
  int64_t window = 0;
  // Optional additive mask (-inf allowed) [batch, q_heads, q_len, kv_len], element
  // strides; stride 0 broadcasts (an [q_len, kv_len] mask: {0, 0, ld, 1}).
  const float* mask = nullptr;
  int64_t mask_strides[4] = {0, 0, 0, 1};
  // Logit soft-capping (0 = off): s = cap * tanh(s / cap), applied to the scaled
  // scores before the mask (Gemma 2).
  float softcap = 0.0f;
  // Attention sinks [q_heads] (null = none): a learned logit per head that joins the
  // softmax denominator but has no value row (gpt-oss).
  const float* sinks = nullptr;
};

// out = softmax(scale * q k^T (softcapped) + mask, over visible keys) v.
// Scores: s_ij = scale * <q_i, k_j>; softcap; + mask_ij; invisible keys (causal /
// window) get -inf. A query row that sees no key (everything masked, or -inf in the
// mask everywhere) yields zeros, not NaN (with sinks: zeros too, since the sink has
// no value). With AVX2: a flash-attention kernel (online softmax over key tiles,
// GQA heads sharing each k/v load, decode split over key blocks when there are fewer
// heads than threads). Without: the naive reference (materialized scores).
void scaled_dot_product_attention(const AttentionArgs& args,
                                  const AttentionOptions& options,
                                  ThreadPool& pool);

// The naive reference: materializes each query row's scores, softmax, weighted sum
// (f64 accumulation). Single-threaded; tests and the scalar fallback use it.
void attention_reference(const AttentionArgs& args, const AttentionOptions& options);

}  // namespace lmx::cpu
