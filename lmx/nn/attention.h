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
  // Qwen3-Next: q_proj also yields a per-head output gate ([q_h, gate_h] for each head);
  // the attention output is multiplied by sigmoid(gate) before o_proj.
  bool output_gate = false;
};

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
};

}  // namespace lmx::nn
