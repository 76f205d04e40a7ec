// Multi-head attention with grouped KV heads and the per-architecture switches
// (biases, fused qkv, q/k norms, RoPE or none, sliding window, soft-capping).
#pragma once

#include <memory>

#include "lmx/nn/kv_cache.h"
#include "lmx/nn/linear.h"
#include "lmx/nn/norm.h"
#include "lmx/nn/rope.h"

namespace lmx::nn {

enum class QkNorm { none, per_head, full };

struct AttentionOptions {
  int64_t hidden = 0;
  int64_t heads = 0;
  int64_t kv_heads = 0;
  int64_t head_dim = 0;
  bool qkv_bias = false;        // biases on q/k/v projections
  bool o_bias = false;          // bias on the output projection
  bool fused_qkv = false;       // one "qkv_proj" (Phi-3)
  QkNorm qk_norm = QkNorm::none;
  bool qk_norm_unit_offset = false;  // Gemma-3 norms scale by (1 + w)
  float norm_eps = 1e-6f;
  const RotaryEmbedding* rope = nullptr;  // null: no positional rotation (NoPE layer)
  float scale = 0.0f;           // 0: 1 / sqrt(head_dim)
  float softcap = 0.0f;         // attention logit soft-capping (0 = off)
  int64_t window = 0;           // sliding window (0 = full attention)
  bool sinks = false;           // learned per-head sink logits "sinks" [heads] (gpt-oss)
  float clip_qkv = 0.0f;        // clamp q, k, v to [-clip, clip] after projection and a full q/k norm (0 = off)
  // Llama 4: weightless RMS ("L2") norm of q and k after RoPE; chunked attention (a query
  // sees the keys of its own chunk of `chunk` positions only, 0 = off); on NoPE layers
  // queries at position p scaled by 1 + temperature_scale * log1p(floor((p + 1) / temperature_floor)).
  bool qk_l2_norm = false;
  int64_t chunk = 0;
  float temperature_scale = 0.0f;  // 0 = off
  float temperature_floor = 1.0f;
  // Qwen3-Next: q_proj also yields a per-head output gate ([q_h, gate_h] for each head);
  // the attention output is multiplied by sigmoid(gate) before o_proj.
  bool output_gate = false;
};

// x [B, H, L, D] rotated at the positions of the tokens a cache is about to receive (its
// offset, less each row's left padding); no cache: positions 0 ...
Tensor rope_at_cache_positions(const RotaryEmbedding& rope, const Tensor& x, const KVCache* cache);
// The mask (or causal offset) in p for the keys the cache returned by its last update, for
// q_len queries that start at absolute position offset_before; the mask moves to `device`.
// The caches build masks on the host.
void set_mask(ops::AttentionParams& p, const KVCache& cache, int64_t q_len, int64_t offset_before, Device device);

class Attention : public Module {
 public:
  explicit Attention(const AttentionOptions& o);
  // x [batch, seq, hidden] -> [batch, seq, hidden]; cache may be null (a fresh causal
  // pass over the whole sequence).
  Tensor forward(const Tensor& x, KVCache* cache) const;
  const AttentionOptions& options() const { return o_; }

 private:
  AttentionOptions o_;
  std::unique_ptr<Linear> q_proj_, k_proj_, v_proj_, qkv_proj_, o_proj_;
  std::unique_ptr<RMSNorm> q_norm_, k_norm_;
  Tensor sinks_;  // [heads]
};

}  // namespace lmx::nn
