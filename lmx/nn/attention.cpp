#include "lmx/nn/attention.h"

#include <cmath>

#include "lmx/core/error.h"
#include "lmx/core/ops/nn.h"

namespace lmx::nn {

Attention::Attention(const AttentionOptions& o) : o_(o) {
  if (o.heads <= 0 || o.kv_heads <= 0 || o.heads % o.kv_heads != 0 || o.head_dim <= 0) {
    throw FormatError("attention: heads " + std::to_string(o.heads) + " must be a positive multiple of kv heads " +
                      std::to_string(o.kv_heads) + " (head_dim " + std::to_string(o.head_dim) + ")");
  }
  const int64_t q_dim = o.heads * o.head_dim, kv_dim = o.kv_heads * o.head_dim;
  if (o.fused_qkv) {
    qkv_proj_ = std::make_unique<Linear>(o.hidden, q_dim + 2 * kv_dim, o.qkv_bias);
    register_module("qkv_proj", *qkv_proj_);
  } else {
    q_proj_ = std::make_unique<Linear>(o.hidden, q_dim, o.qkv_bias);
    k_proj_ = std::make_unique<Linear>(o.hidden, kv_dim, o.qkv_bias);
    v_proj_ = std::make_unique<Linear>(o.hidden, kv_dim, o.qkv_bias);
    register_module("q_proj", *q_proj_);
    register_module("k_proj", *k_proj_);
    register_module("v_proj", *v_proj_);
  }
  o_proj_ = std::make_unique<Linear>(q_dim, o.hidden, o.o_bias);
  register_module("o_proj", *o_proj_);
  if (o.qk_norm != QkNorm::none) {
    const bool full = o.qk_norm == QkNorm::full;
    q_norm_ = std::make_unique<RMSNorm>(full ? q_dim : o.head_dim, o.norm_eps, o.qk_norm_unit_offset);
    k_norm_ = std::make_unique<RMSNorm>(full ? kv_dim : o.head_dim, o.norm_eps, o.qk_norm_unit_offset);
    register_module("q_norm", *q_norm_);
    register_module("k_norm", *k_norm_);
  }
}

Tensor Attention::forward(const Tensor& x, KVCache* cache) const {
  const int64_t B = x.dim(0), L = x.dim(1);
  const int64_t q_dim = o_.heads * o_.head_dim, kv_dim = o_.kv_heads * o_.head_dim;
  Tensor q, k, v;  // [B, L, H * D]
  if (qkv_proj_) {
    Tensor qkv = qkv_proj_->forward(x);
    q = qkv.slice(2, 0, q_dim);
    k = qkv.slice(2, q_dim, q_dim + kv_dim);
    v = qkv.slice(2, q_dim + kv_dim, q_dim + 2 * kv_dim);
  } else {
    q = q_proj_->forward(x);
    k = k_proj_->forward(x);
    v = v_proj_->forward(x);
  }
  if (o_.qk_norm == QkNorm::full) {
    q = q_norm_->forward(q);
    k = k_norm_->forward(k);
  }
  // [B, L, H, D] viewed as [B, H, L, D] (strided; kernels take strides).
  q = q.reshape({B, L, o_.heads, o_.head_dim}).transpose(1, 2);
  k = k.reshape({B, L, o_.kv_heads, o_.head_dim}).transpose(1, 2);
  v = v.reshape({B, L, o_.kv_heads, o_.head_dim}).transpose(1, 2);
  if (o_.qk_norm == QkNorm::per_head) {
    q = q_norm_->forward(q);
    k = k_norm_->forward(k);
  }
  const int64_t offset = cache ? cache->offset() : 0;
  if (o_.rope) {
    q = o_.rope->apply(q, offset);
    k = o_.rope->apply(k, offset);
  }
  int64_t key_start = 0;
  if (cache) {
    auto kv = cache->update_and_fetch(k, v);
    k = kv.first;
    v = kv.second;
    key_start = cache->first_position();
  }
  ops::AttentionParams p;
  p.scale = o_.scale != 0.0f ? o_.scale : 1.0f / std::sqrt(static_cast<float>(o_.head_dim));
  p.causal = true;
  p.q_offset = offset - key_start;  // query positions relative to the first returned key
  p.window = o_.window;
  p.softcap = o_.softcap;
  Tensor out = ops::scaled_dot_product_attention(q, k, v, p);  // [B, H, L, D]
  return o_proj_->forward(out.transpose(1, 2).reshape({B, L, q_dim}));
}

}  // namespace lmx::nn
