#include "lmx/nn/mla.h"

#include <cmath>

#include "lmx/base/error.h"
#include "lmx/core/ops/linalg.h"
#include "lmx/core/ops/nn.h"
#include "lmx/core/ops/shape.h"
#include "lmx/nn/attention.h"

namespace lmx::nn {

MultiLatentAttention::MultiLatentAttention(const MlaOptions& o) : o_(o) {
  if (o.heads <= 0 || o.kv_lora_rank <= 0 || o.qk_nope_head_dim < 0 || o.qk_rope_head_dim <= 0 || o.v_head_dim <= 0 ||
      o.q_lora_rank < 0 || !o.rope) {
    throw FormatError("multi-latent attention: heads, kv_lora_rank, qk_rope_head_dim and v_head_dim must be positive");
  }
  const int64_t qk = o.qk_nope_head_dim + o.qk_rope_head_dim;
  if (o.q_lora_rank == 0) {
    q_proj_ = std::make_unique<Linear>(o.hidden, o.heads * qk, false);
    register_module("q_proj", *q_proj_);
  } else {
    q_a_proj_ = std::make_unique<Linear>(o.hidden, o.q_lora_rank, o.bias);
    q_a_norm_ = std::make_unique<RMSNorm>(o.q_lora_rank, o.norm_eps);
    q_b_proj_ = std::make_unique<Linear>(o.q_lora_rank, o.heads * qk, false);
    register_module("q_a_proj", *q_a_proj_);
    register_module("q_a_layernorm", *q_a_norm_);
    register_module("q_b_proj", *q_b_proj_);
  }
  kv_a_proj_ = std::make_unique<Linear>(o.hidden, o.kv_lora_rank + o.qk_rope_head_dim, o.bias);
  kv_a_norm_ = std::make_unique<RMSNorm>(o.kv_lora_rank, o.norm_eps);
  kv_b_proj_ = std::make_unique<Linear>(o.kv_lora_rank, o.heads * (o.qk_nope_head_dim + o.v_head_dim), false);
  o_proj_ = std::make_unique<Linear>(o.heads * o.v_head_dim, o.hidden, o.bias);
  register_module("kv_a_proj_with_mqa", *kv_a_proj_);
  register_module("kv_a_layernorm", *kv_a_norm_);
  register_module("kv_b_proj", *kv_b_proj_);
  register_module("o_proj", *o_proj_);
}

Tensor MultiLatentAttention::forward(const Tensor& x, KVCache* cache) const {
  const int64_t B = x.dim(0), L = x.dim(1), H = o_.heads;
  const int64_t nope = o_.qk_nope_head_dim, rope = o_.qk_rope_head_dim, rank = o_.kv_lora_rank;
  // q_a_proj (or q_proj) and kv_a_proj read the same x: one parallel region on decode.
  const Linear* first[2] = {q_proj_ ? q_proj_.get() : q_a_proj_.get(), kv_a_proj_.get()};
  const std::vector<Tensor> xa = forward_shared_input(x, first);
  Tensor q = q_proj_ ? xa[0] : q_b_proj_->forward(q_a_norm_->forward(xa[0]));
  q = q.reshape({B, L, H, nope + rope}).transpose(1, 2);  // [B, H, L, nope + rope]
  const Tensor& compressed = xa[1];                       // [B, L, rank + rope]
  Tensor latent = kv_a_norm_->forward(compressed.slice(2, 0, rank)).reshape({B, 1, L, rank});
  Tensor k_pe = compressed.slice(2, rank, rank + rope).reshape({B, 1, L, rope});
  Tensor q_pe = rope_at_cache_positions(*o_.rope, q.slice(3, nope, nope + rope), cache);
  k_pe = rope_at_cache_positions(*o_.rope, k_pe, cache);
  ops::AttentionParams p;
  p.scale = o_.scale != 0.0f ? o_.scale : 1.0f / std::sqrt(static_cast<float>(nope + rope));
  p.causal = true;
  if (cache) {
    if (cache->is_quantized()) {
      throw Unsupported("multi-latent attention: a quantized KV cache (kv bits) is not supported; the cache "
                        "already holds the compressed latent");
    }
    const int64_t offset = cache->offset();
    auto kv = cache->update_and_fetch(latent, k_pe);
    latent = kv.first;
    k_pe = kv.second;
    set_mask(p, *cache, L, offset, q.device());
  }
  q = ops::concat({q.slice(3, 0, nope).contiguous(), q_pe.contiguous()}, 3);
  // Expanding every cached latent costs T * rank * H * (nope + v) per call; the latent
  // form costs L * H * (nope + v) * rank: decoding steps take the latter.
  // (An adapter on kv_b_proj only acts through the expanded form.)
  const bool latent_form = latent.dim(2) >= 4 * L && !kv_b_proj_->lora();
  const Tensor out = latent_form ? absorbed(q, latent, k_pe, p) : expanded(q, latent, k_pe, p);
  return o_proj_->forward(out.transpose(1, 2).reshape({B, L, H * o_.v_head_dim}));
}

Tensor MultiLatentAttention::expanded(const Tensor& q, const Tensor& latent, const Tensor& k_pe,
                                      const ops::AttentionParams& p) const {
  const int64_t B = latent.dim(0), T = latent.dim(2), H = o_.heads, nope = o_.qk_nope_head_dim;
  Tensor kv = kv_b_proj_->forward(latent.reshape({B, T, o_.kv_lora_rank}))
                  .reshape({B, T, H, nope + o_.v_head_dim})
                  .transpose(1, 2);  // [B, H, T, nope + v]
  Tensor k = ops::concat({kv.slice(3, 0, nope).contiguous(), ops::repeat_interleave(k_pe, H, 1)}, 3);
  return ops::scaled_dot_product_attention(q, k, kv.slice(3, nope, nope + o_.v_head_dim), p);
}

void MultiLatentAttention::split_kv_b() const {
  const int64_t H = o_.heads, nope = o_.qk_nope_head_dim, rank = o_.kv_lora_rank, v = o_.v_head_dim;
  const WeightMatrix& w = kv_b_proj_->weight();
  const QuantizedWeight& kq = w.quant();
  // The bit widths the CPU reads straight from the MLX layout in ops::quantized_bmm.
  if (w.quantized() && kq.mode == QuantMode::affine && (kq.bits == 4 || kq.bits == 8) && kq.device().is_cpu()) {
    const QuantizedWeight m = kq.mlx_layout();
    // Rows [from, from + count) of every head of an MLX tensor [H * (nope + v), cols].
    auto rows = [&](const Tensor& t, int64_t head, int64_t from, int64_t count) {
      const Tensor per_head = t.reshape({H, nope + v, t.dim(1)});
      const Tensor part = head < 0 ? per_head.slice(1, from, from + count)
                                   : per_head.select(0, head).slice(0, from, from + count);
      return part.contiguous().reshape({-1, t.dim(1)});
    };
    auto part = [&](int64_t head, int64_t from, int64_t count) {
      QuantizedWeight q;
      q.bits = m.bits;
      q.group_size = m.group_size;
      q.mode = m.mode;
      q.w = rows(m.w, head, from, count);
      q.scales = rows(m.scales, head, from, count);
      q.biases = rows(m.biases, head, from, count);
      return q;
    };
    w_uk_q_ = part(-1, 0, nope);
    for (int64_t h = 0; h < H; ++h) {
      w_uv_q_.push_back(part(h, nope, v));
      w_uv_q_.back().prepare();
    }
    return;
  }
  Tensor dense = (w.quantized() ? kq.mlx_layout().dequantize() : w.dense()).to(Dtype::f32);
  dense = dense.reshape({H, nope + v, rank});
  w_uk_ = dense.slice(1, 0, nope).contiguous();
  w_uv_t_ = dense.slice(1, nope, nope + v).transpose(1, 2).contiguous();
}

Tensor MultiLatentAttention::absorbed(const Tensor& q, const Tensor& latent, const Tensor& k_pe,
                                      const ops::AttentionParams& p) const {
  const int64_t H = o_.heads, nope = o_.qk_nope_head_dim;
  // Split once, at the first decoding step (weights are loaded and prepared by then).
  std::call_once(absorb_once_, [&] { split_kv_b(); });
  const int64_t rope = o_.qk_rope_head_dim;
  const bool quantized = !w_uv_q_.empty();
  // Scores: q_nope . (W_uk latent) = (q_nope W_uk) . latent, plus the rotary part.
  const Tensor q_nope = q.slice(3, 0, nope);
  const Tensor q_absorbed = quantized ? ops::quantized_bmm(q_nope, w_uk_q_, H) : ops::matmul(q_nope, w_uk_);
  Tensor q_latent = ops::concat({q_absorbed, q.slice(3, nope, nope + rope).contiguous()}, 3);
  Tensor k = ops::concat({latent.contiguous(), k_pe.contiguous()}, 3);  // one shared key head
  Tensor out = ops::scaled_dot_product_attention(q_latent, k, latent, p);  // [B, H, L, rank]
  if (!quantized) return ops::matmul(out, w_uv_t_);                       // [B, H, L, v]
  // Each head's value rows over its own output: one token's heads in one parallel region.
  std::vector<Tensor> xs;
  std::vector<const Tensor*> in;
  std::vector<const QuantizedWeight*> ws;
  for (int64_t h = 0; h < H; ++h) xs.push_back(out.select(1, h));  // [B, L, rank]
  for (int64_t h = 0; h < H; ++h) {
    in.push_back(&xs[static_cast<size_t>(h)]);
    ws.push_back(&w_uv_q_[static_cast<size_t>(h)]);
  }
  std::vector<Tensor> ys = ops::quantized_linears_each(in, ws, std::vector<Tensor>(static_cast<size_t>(H)));
  for (Tensor& y : ys) y = y.unsqueeze(1);
  return ops::concat(ys, 1);  // [B, H, L, v]
}

}  // namespace lmx::nn
