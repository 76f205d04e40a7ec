#include "lmx/nn/attention.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <string>
#include <vector>

#include "lmx/base/env_switch.h"
#include "lmx/base/error.h"
#include "lmx/core/device_graph.h"
#include "lmx/core/ops/elementwise.h"
#include "lmx/core/ops/nn.h"
#include "lmx/core/ops/step_ops.h"
#include "lmx/nn/appendable_kv.h"
#include "lmx/nn/rope_params.h"

namespace lmx::nn {

namespace {

// Projections in bf16 / f16 on a GPU: dense, or quantized with bf16 scales.
bool half_weights_on_gpu(const Tensor& q, const Linear& o_proj) {
  if (q.device().is_cpu()) return false;
  const WeightMatrix& w = o_proj.weight();
  if (w.quantized()) return w.quant().scale_dtype() == Dtype::bf16;
  return w.dense().defined() && (w.dense().dtype() == Dtype::bf16 || w.dense().dtype() == Dtype::f16);
}

// A prompt on a GPU with bf16 / f16 projections (quantized ones while the quantized
// prefill GEMMs round x to bf16, LMX_CUDA_QUANT_BF16_PREFILL): K and V go to the attention
// in bf16, which runs it on the tensor cores with q rounded to bf16 too (as the GEMMs round
// x for these weights). The CPU, f32 weights (f32 scales) and decode steps keep f32 q.
bool bf16_attention(const Tensor& q, const Linear& o_proj) {
  constexpr int64_t kMinRows = 16;  // the CUDA tensor-core kernel's (flash_attention.h)
  if (q.dim(2) < kMinRows || !cuda_flash_attention() || !half_weights_on_gpu(q, o_proj)) return false;
  return !o_proj.weight().quantized() || cuda_quant_bf16_prefill();
}

// The same models keep their KV cache in bf16 (LMX_CUDA_KV_BF16): K / V are rounded once,
// as they enter the cache (the cache allocates its buffers in the dtype of the first keys,
// lmx/generate/kv_buffer.h); the CPU and f32 models keep f32 caches.
bool bf16_kv_cache(const Tensor& q, const Linear& o_proj) { return cuda_kv_bf16() && half_weights_on_gpu(q, o_proj); }

// x [B, H, L, D] rotated per row b at positions offset - pad[b] + s; left-padding
// positions (negative) stay as they are (they are masked out as keys, and their
// outputs are never read).
Tensor rope_rows(const RotaryEmbedding& rope,
                 const Tensor& x,
                 const std::vector<int64_t>& pad,
                 int64_t offset) {
  const int64_t B = x.dim(0), L = x.dim(2);
  if (static_cast<int64_t>(pad.size()) != B) {
    throw ShapeError("attention: cache left padding has " + std::to_string(pad.size()) +
                     " rows for batch " + std::to_string(B));
  }
  // Every row's call starting at a real position (a batched decode step, say) with
  // frequencies that do not depend on the length: one rope over the batch, row b at
  // offset - pad[b] + s, the same values as row by row in a single launch.
  const std::string& type = rope.config().type;
  const bool all_real = std::all_of(pad.begin(), pad.end(), [&](int64_t p) { return offset - p >= 0; });
  if (all_real && type != "dynamic" && type != "longrope") {
    ops::RopeParams p = rope_params(rope, offset, L, x.device());
    p.offset = 0;
    std::vector<int64_t> starts(pad.size());
    for (size_t b = 0; b < pad.size(); ++b) starts[b] = offset - pad[b];
    p.batch_offsets = Tensor::from_vector(starts, {B}).to(x.device());
    return ops::rope(x, p);
  }
  Tensor out = x.contiguous().clone();
  for (int64_t b = 0; b < B; ++b) {
    const int64_t start = offset - pad[static_cast<size_t>(b)];  // position of token 0 of this call
    const int64_t skip = std::clamp<int64_t>(-start, 0, L);
    if (skip == L) continue;
    Tensor rows = x.slice(0, b, b + 1).slice(2, skip, L);
    out.slice(0, b, b + 1).slice(2, skip, L).copy_(rope.apply(rows, start + skip));
  }
  return out;
}

// Additive mask [q_len, kv_len]: 0 where visible(i, j), -inf elsewhere.
template <typename Visible>
Tensor additive_mask(int64_t q_len, int64_t kv_len, Visible visible) {
  std::vector<float> m(static_cast<size_t>(q_len * kv_len));
  for (int64_t i = 0; i < q_len; ++i) {
    for (int64_t j = 0; j < kv_len; ++j) {
      m[static_cast<size_t>(i * kv_len + j)] = visible(i, j) ? 0.0f : -std::numeric_limits<float>::infinity();
    }
  }
  return Tensor::from_vector(m, {q_len, kv_len});
}

// Chunked causal attention, queries at positions q0 ..., keys at k0 ...
Tensor chunk_mask(int64_t q_len, int64_t kv_len, int64_t q0, int64_t k0, int64_t chunk) {
  return additive_mask(q_len, kv_len, [&](int64_t i, int64_t j) {
    const int64_t qp = q0 + i, kp = k0 + j;
    return kp <= qp && kp / chunk == qp / chunk;
  });
}

// Bidirectional sliding-window attention over one sequence: |i - j| < window.
Tensor symmetric_window_mask(int64_t len, int64_t window) {
  return additive_mask(len, len, [&](int64_t i, int64_t j) { return std::abs(i - j) < window; });
}

// q [B, H, L, D] at positions offset ... scaled per position (Llama 4's NoPE layers).
Tensor temperature_scaled(const Tensor& q, int64_t offset, float scale, float floor_scale) {
  const int64_t L = q.dim(2);
  std::vector<float> f(static_cast<size_t>(L));
  for (int64_t i = 0; i < L; ++i) {
    const float pos = static_cast<float>(offset + i);
    f[static_cast<size_t>(i)] = std::log1p(std::floor((pos + 1.0f) / floor_scale)) * scale + 1.0f;
  }
  return ops::mul(q, Tensor::from_vector(f, {L, 1}).to(q.device()));
}

// Additive mask [L, L] of a call's tokens grouped in blocks (AttentionContext::blocks).
Tensor block_mask(const std::vector<int64_t>& blocks, bool causal, int64_t window) {
  const int64_t L = static_cast<int64_t>(blocks.size());
  std::vector<float> m(static_cast<size_t>(L * L));
  for (int64_t i = 0; i < L; ++i) {
    for (int64_t j = 0; j < L; ++j) {
      const int64_t bi = blocks[static_cast<size_t>(i)], bj = blocks[static_cast<size_t>(j)];
      const bool same = bi >= 0 && bi == bj;
      bool visible = causal ? (j <= i || same) : same;
      if (causal && window > 0 && j <= i - window) visible = false;
      m[static_cast<size_t>(i * L + j)] = visible ? 0.0f : -std::numeric_limits<float>::infinity();
    }
  }
  return Tensor::from_vector(m, {L, L});
}

}  // namespace

Tensor rope_at(const RotaryEmbedding& rope, const Tensor& x, int64_t offset, const std::vector<int64_t>& pad) {
  return pad.empty() ? rope.apply(x, offset) : rope_rows(rope, x, pad, offset);
}

Tensor rope_at_cache_positions(const RotaryEmbedding& rope, const Tensor& x, const KVCache* cache) {
  return rope_at(rope, x, cache ? cache->offset() : 0, cache ? cache->left_padding() : std::vector<int64_t>{});
}

void set_mask(ops::AttentionParams& p, const KVCache& cache, int64_t q_len, int64_t offset_before,
              Device device) {
  Tensor mask = cache.make_mask(q_len, p.window);
  if (mask.defined()) {
    p.mask = mask.device() == device ? mask : mask.contiguous().to(device);
    p.causal = false;
    p.window = 0;
    p.q_offset = 0;
  } else {
    p.q_offset = offset_before - cache.first_position();  // relative to the first returned key
  }
}

Attention::Attention(const AttentionOptions& o) : o_(o) {
  if (o.heads <= 0 || o.kv_heads <= 0 || o.heads % o.kv_heads != 0 || o.head_dim <= 0) {
    throw FormatError("attention: heads " + std::to_string(o.heads) +
                      " must be a positive multiple of kv heads " + std::to_string(o.kv_heads) +
                      " (head_dim " + std::to_string(o.head_dim) + ")");
  }
  const int64_t q_dim = o.heads * o.head_dim, kv_dim = o.kv_heads * o.head_dim;
  if (o.qkv_per_head && (!o.fused_qkv || o.kv_heads != o.heads)) {
    throw FormatError("attention: a per-head fused qkv layout needs as many kv heads as heads");
  }
  if (o.kv_shared) {
    if (o.fused_qkv || o.output_gate || o.qk_norm != QkNorm::per_head || o.sinks || o.chunk > 0 || o.clip_qkv > 0.0f ||
        o.temperature_scale > 0.0f || o.qk_norm_after_rope || o.qk_l2_norm || o.sub_norm || !o.causal) {
      throw Unsupported("attention: a layer reusing another layer's keys and values supports separate projections "
                        "and per-head q norms only");
    }
    q_proj_ = std::make_unique<Linear>(o.hidden, q_dim, o.qkv_bias);
    register_module("q_proj", *q_proj_);
  } else if (o.fused_qkv) {
    qkv_proj_ = std::make_unique<Linear>(o.hidden, q_dim + 2 * kv_dim, o.qkv_bias);
    register_module(o.qkv_name, *qkv_proj_);
  } else {
    q_proj_ = std::make_unique<Linear>(o.hidden, o.output_gate ? 2 * q_dim : q_dim, o.qkv_bias);
    k_proj_ = std::make_unique<Linear>(o.hidden, kv_dim, o.qkv_bias);
    register_module("q_proj", *q_proj_);
    register_module("k_proj", *k_proj_);
    if (!o.values_from_keys) {
      v_proj_ = std::make_unique<Linear>(o.hidden, kv_dim, o.qkv_bias);
      register_module("v_proj", *v_proj_);
    }
  }
  if (o.values_from_keys && (o.fused_qkv || o.kv_shared)) {
    throw Unsupported("attention: values from the keys' projection need separate q / k projections");
  }
  o_proj_ = std::make_unique<Linear>(q_dim, o.hidden, o.o_bias);
  register_module(o.o_name, *o_proj_);
  if (o.sinks) register_parameter("sinks", sinks_, {o.heads});
  if (o.qk_norm == QkNorm::head_wise_layer) {
    q_head_norm_ = std::make_unique<PerHeadLayerNorm>(o.heads, o.head_dim, o.norm_eps, o.qk_norm_split);
    k_head_norm_ = std::make_unique<PerHeadLayerNorm>(o.kv_heads, o.head_dim, o.norm_eps, o.qk_norm_split);
    register_module(o.q_norm_name, *q_head_norm_);
    register_module(o.k_norm_name, *k_head_norm_);
  } else if (o.qk_norm != QkNorm::none) {
    const bool full = o.qk_norm == QkNorm::full;
    const NormKind kind = o.qk_norm == QkNorm::per_head_layer ? NormKind::layer : NormKind::rms;
    const bool weight = o.qk_norm != QkNorm::weightless;
    q_norm_ = std::make_unique<Norm>(kind, full ? q_dim : o.head_dim, o.norm_eps, o.qk_norm_unit_offset, true,
                                     weight);
    register_module(o.q_norm_name, *q_norm_);
    if (!o.kv_shared) {
      k_norm_ = std::make_unique<Norm>(kind, full ? kv_dim : o.head_dim, o.norm_eps, o.qk_norm_unit_offset, true,
                                       weight);
      register_module(o.k_norm_name, *k_norm_);
    }
  }
  if (o.sub_norm) {
    sub_norm_ = std::make_unique<RMSNorm>(q_dim, o.norm_eps);
    register_module("attn_sub_norm", *sub_norm_);
  }
}

Tensor Attention::norm_heads(const Tensor& x, bool query) const {
  if (q_head_norm_) return (query ? q_head_norm_ : k_head_norm_)->forward(x);
  return (query ? q_norm_ : k_norm_)->forward(x);
}

Tensor Attention::forward_shared(const Tensor& x, const SharedKV& shared) const {
  const int64_t B = x.dim(0), L = x.dim(1);
  Tensor q = q_proj_->forward(x).reshape({B, L, o_.heads, o_.head_dim}).transpose(1, 2);
  q = norm_heads(q, true);
  if (o_.rope) q = rope_at(*o_.rope, q, shared.offset, shared.left_padding);
  ops::AttentionParams p = shared.params;
  p.scale = o_.scale != 0.0f ? o_.scale : 1.0f / std::sqrt(static_cast<float>(o_.head_dim));
  p.softcap = o_.softcap;
  Tensor out = shared.quantized ? ops::quantized_scaled_dot_product_attention(q, *shared.quantized, p)
                                : ops::scaled_dot_product_attention(q, shared.k, shared.v, p);
  return o_proj_->forward(out.transpose(1, 2).reshape({B, L, o_.heads * o_.head_dim}));
}

Tensor Attention::forward(const ops::LinearInput& x, KVCache* cache, const AttentionContext* ctx,
                          SharedKV* shared) const {
  if (o_.kv_shared) {
    if (!shared || (!shared->k.defined() && !shared->quantized)) {
      throw InternalError("attention: a kv_shared layer ran before the layer whose keys and values it reuses");
    }
    if (ctx) throw Unsupported("attention: a layer reusing another layer's keys and values takes no attention context");
    return forward_shared(x.value(), *shared);
  }
  if (x.shape().size() < 2) throw ShapeError("attention: input " + shape_str(x.shape()) + " is not [batch, seq, hidden]");
  const int64_t B = x.shape()[0], L = x.shape()[1];
  const bool own_rotation = ctx && ctx->cos.defined();
  const bool blocks = ctx && !ctx->blocks.empty();
  if (blocks && (static_cast<int64_t>(ctx->blocks.size()) != L || (cache && cache->offset() != 0))) {
    throw Unsupported("attention: token blocks need the whole sequence in one call over a fresh cache (" +
                      std::to_string(ctx->blocks.size()) + " blocks for " + std::to_string(L) + " tokens)");
  }
  const int64_t q_dim = o_.heads * o_.head_dim, kv_dim = o_.kv_heads * o_.head_dim;
  Tensor q, k, v;  // [B, L, H * D]
  if (qkv_proj_ && o_.qkv_per_head) {
    const int64_t D = o_.head_dim;
    Tensor qkv = qkv_proj_->forward(x).reshape({B, L, o_.heads, 3 * D});
    q = qkv.slice(3, 0, D);
    k = qkv.slice(3, D, 2 * D);
    v = qkv.slice(3, 2 * D, 3 * D);
  } else if (qkv_proj_) {
    Tensor qkv = qkv_proj_->forward(x);
    q = qkv.slice(2, 0, q_dim);
    k = qkv.slice(2, q_dim, q_dim + kv_dim);
    v = qkv.slice(2, q_dim + kv_dim, q_dim + 2 * kv_dim);
  } else if (!v_proj_) {  // values_from_keys
    const Linear* layers[2] = {q_proj_.get(), k_proj_.get()};
    std::vector<Tensor> qk = forward_shared_input(x, layers);
    q = qk[0];
    k = v = qk[1];
  } else {
    const Linear* layers[3] = {q_proj_.get(), k_proj_.get(), v_proj_.get()};
    std::vector<Tensor> qkv = forward_shared_input(x, layers);
    q = qkv[0];
    k = qkv[1];
    v = qkv[2];
  }
  Tensor gate;  // [B, L, H * D]
  if (o_.output_gate) {
    Tensor qg = q.reshape({B, L, o_.heads, 2 * o_.head_dim});
    gate = qg.slice(3, o_.head_dim, 2 * o_.head_dim).contiguous().reshape({B, L, q_dim});
    q = qg.slice(3, 0, o_.head_dim).contiguous().reshape({B, L, q_dim});
  }
  if (o_.qk_norm == QkNorm::full) {
    q = q_norm_->forward(q);
    k = k_norm_->forward(k);
  }
  if (o_.clip_qkv > 0.0f) {
    q = ops::clamp(q, -o_.clip_qkv, o_.clip_qkv);
    k = ops::clamp(k, -o_.clip_qkv, o_.clip_qkv);
    v = ops::clamp(v, -o_.clip_qkv, o_.clip_qkv);
  }
  // [B, L, H, D] viewed as [B, H, L, D] (strided; kernels take strides).
  q = q.reshape({B, L, o_.heads, o_.head_dim}).transpose(1, 2);
  k = k.reshape({B, L, o_.kv_heads, o_.head_dim}).transpose(1, 2);
  v = v.reshape({B, L, o_.kv_heads, o_.head_dim});
  if (o_.v_norm) v = ops::rms_norm(v, Tensor(), o_.norm_eps);
  v = v.transpose(1, 2);
  const bool head_norms = o_.qk_norm != QkNorm::none && o_.qk_norm != QkNorm::full;
  if (head_norms && !o_.qk_norm_after_rope) {
    q = norm_heads(q, true);
    k = norm_heads(k, false);
  }
  const int64_t offset = cache ? cache->offset() : 0;
  // One token of batch 1 on a device with fused decode kernels, over the plain cache:
  // RoPE of q and k and the cache append in one launch (the CPU keeps the per-op path).
  nn::AppendableKV* appendable = nullptr;
  if (L == 1 && B == 1 && cache && o_.rope && !own_rotation && !blocks && !(head_norms && o_.qk_norm_after_rope) &&
      !o_.qk_l2_norm && o_.temperature_scale <= 0.0f && !q.device().is_cpu() && fused_decode() &&
      graph_backend_for(q.device())) {
    appendable = dynamic_cast<nn::AppendableKV*>(cache);
  }
  if (appendable) {
    auto [kbuf, vbuf] = appendable->reserve(k, v);
    q = ops::rope_append(q, k, v, rope_params(*o_.rope, offset, 1, q.device()), kbuf, vbuf);
  } else if (own_rotation) {
    q = apply_rotary(q, ctx->cos, ctx->sin);
    k = apply_rotary(k, ctx->cos, ctx->sin);
  } else if (o_.rope) {
    q = rope_at_cache_positions(*o_.rope, q, cache);
    k = rope_at_cache_positions(*o_.rope, k, cache);
  }
  if (head_norms && o_.qk_norm_after_rope) {
    q = norm_heads(q, true);
    k = norm_heads(k, false);
  }
  if (o_.qk_l2_norm) {
    q = ops::rms_norm(q, Tensor(), o_.norm_eps);
    k = ops::rms_norm(k, Tensor(), o_.norm_eps);
  }
  if (o_.temperature_scale > 0.0f) q = temperature_scaled(q, offset, o_.temperature_scale, o_.temperature_floor);
  ops::AttentionParams p;
  p.scale = o_.scale != 0.0f ? o_.scale : 1.0f / std::sqrt(static_cast<float>(o_.head_dim));
  p.causal = o_.causal;
  p.window = o_.window;
  if (!o_.causal) {
    if (cache) throw Unsupported("attention: a bidirectional (non-causal) layer runs without a KV cache");
    p.causal = false;
    p.window = 0;  // the kernels' window is causal (keys behind the query only)
    if (o_.window > 0) p.mask = symmetric_window_mask(L, o_.window).to(q.device());
  }
  p.softcap = o_.softcap;
  if (sinks_.defined()) p.sinks = sinks_.dtype() == Dtype::f32 ? sinks_ : sinks_.to(Dtype::f32);
  Tensor out;  // [B, H, L, D]
  if (cache && cache->is_quantized()) {
    if (blocks) throw Unsupported("attention: token blocks over a quantized cache");
    nn::QuantizedKV kv = cache->update_and_fetch_quantized(k, v);
    set_mask(p, *cache, L, offset, q.device());
    if (shared) *shared = SharedKV{{}, {}, kv, p, offset, cache->left_padding()};
    out = ops::quantized_scaled_dot_product_attention(q, kv, p);
  } else {
    if (cache) {
      if (!appendable && bf16_kv_cache(q, *o_proj_)) {
        k = k.to(Dtype::bf16);
        v = v.to(Dtype::bf16);
      }
      auto kv = appendable ? appendable->commit(L) : cache->update_and_fetch(k, v);
      k = kv.first;
      v = kv.second;
      set_mask(p, *cache, L, offset, q.device());
    }
    if (bf16_attention(q, *o_proj_)) {
      k = k.to(Dtype::bf16);
      v = v.to(Dtype::bf16);
    }
    if (o_.chunk > 0) {
      if (p.mask.defined()) throw Unsupported("attention: chunked attention over a cache that masks its own keys");
      p.mask = chunk_mask(L, k.dim(2), offset, offset - p.q_offset, o_.chunk).to(q.device());
      p.causal = false;
      p.q_offset = 0;
    }
    if (blocks) {
      if (k.dim(2) != L) throw Unsupported("attention: token blocks over a cache that kept earlier keys");
      p.mask = block_mask(ctx->blocks, o_.causal, o_.window).to(q.device());
      p.causal = false;
      p.window = 0;
      p.q_offset = 0;
    }
    if (shared) *shared = SharedKV{k, v, std::nullopt, p, offset, cache ? cache->left_padding() : std::vector<int64_t>{}};
    out = ops::scaled_dot_product_attention(q, k, v, p);
  }
  out = out.transpose(1, 2).reshape({B, L, q_dim});
  if (gate.defined()) out = ops::mul(out, ops::sigmoid(gate));
  return o_proj_->forward(sub_norm_ ? sub_norm_->forward(out) : out);
}

}  // namespace lmx::nn
