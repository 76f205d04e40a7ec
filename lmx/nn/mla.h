// Multi-head latent attention (DeepSeek-V2 / V3, Kimi K2): queries through an optional
// low-rank bottleneck (q_a_proj -> q_a_layernorm -> q_b_proj), keys and values expanded
// per head from one compressed latent (kv_a_proj_with_mqa -> kv_a_layernorm -> kv_b_proj)
// plus one rotary key shared by all heads. The KV cache keeps what mlx-lm keeps: the
// normed latent as "keys" [B, 1, T, kv_lora_rank] and the rotated shared key as "values"
// [B, 1, T, qk_rope_head_dim], (kv_lora_rank + qk_rope_head_dim) floats per token and
// layer. Prefill expands the latent through kv_b_proj into per-head keys and values;
// decoding (a few queries over a longer cache) attends in the latent space instead
// (mlx-lm's absorbed form: the same products, reassociated).
#pragma once

#include <memory>
#include <mutex>
#include <vector>

#include "lmx/nn/kv_cache.h"
#include "lmx/nn/linear.h"
#include "lmx/nn/norm.h"
#include "lmx/nn/rope.h"

namespace lmx::nn {

struct MlaOptions {
  int64_t hidden = 0;
  int64_t heads = 0;
  int64_t q_lora_rank = 0;  // 0: a plain q_proj
  int64_t kv_lora_rank = 0;
  int64_t qk_nope_head_dim = 0;
  int64_t qk_rope_head_dim = 0;
  int64_t v_head_dim = 0;
  bool bias = false;  // on q_a_proj, kv_a_proj_with_mqa and o_proj (attention_bias)
  float norm_eps = 1e-6f;
  float scale = 0.0f;  // 0: 1 / sqrt(qk_nope_head_dim + qk_rope_head_dim)
  const RotaryEmbedding* rope = nullptr;
};

class MultiLatentAttention : public Module {
 public:
  explicit MultiLatentAttention(const MlaOptions& o);
  // x [batch, seq, hidden] -> [batch, seq, hidden]; cache may be null.
  Tensor forward(const Tensor& x, KVCache* cache) const;

 private:
  // q [B, H, L, nope + rope] (rotated) over the cached latent [B, 1, T, rank] and rotary
  // keys [B, 1, T, rope] -> [B, H, L, v].
  Tensor expanded(const Tensor& q, const Tensor& latent, const Tensor& k_pe, const ops::AttentionParams& p) const;
  Tensor absorbed(const Tensor& q, const Tensor& latent, const Tensor& k_pe, const ops::AttentionParams& p) const;
  void split_kv_b() const;

  MlaOptions o_;
  // kv_b_proj split per head for the latent form, once, at the first decoding step. A 4- or
  // 8-bit affine kv_b_proj on the CPU stays quantized: w_uk_q_ its key rows [H * nope, rank]
  // (MLX tensors, read by ops::quantized_bmm) and w_uv_q_ each head's value rows [v, rank]
  // (prepared); any other weight becomes dense f32 [H, nope, rank] and [H, rank, v].
  mutable std::once_flag absorb_once_;
  mutable Tensor w_uk_, w_uv_t_;
  mutable QuantizedWeight w_uk_q_;
  mutable std::vector<QuantizedWeight> w_uv_q_;
  std::unique_ptr<Linear> q_proj_, q_a_proj_, q_b_proj_, kv_a_proj_, kv_b_proj_, o_proj_;
  std::unique_ptr<RMSNorm> q_a_norm_, kv_a_norm_;
};

}  // namespace lmx::nn
