#include "lmx/nn/ssm/gated_delta_net.h"

#include <cmath>

#include "lmx/base/error.h"
#include "lmx/core/ops/elementwise.h"
#include "lmx/core/ops/nn.h"
#include "lmx/core/ops/reduce.h"
#include "lmx/core/ops/shape.h"
#include "lmx/core/ops/ssm.h"

namespace lmx::nn {
namespace {

// x / sqrt(sum(x^2) + 1e-6) over the last axis (the FLA kernels' l2norm).
Tensor l2_normalize(const Tensor& x) {
  return ops::mul(x, ops::rsqrt(ops::add(ops::sum(ops::square(x), -1, true), 1e-6)));
}

}  // namespace

GatedDeltaNet::GatedDeltaNet(const GatedDeltaNetOptions& o) : o_(o) {
  if (o_.k_heads <= 0 || o_.v_heads <= 0 || o_.v_heads % o_.k_heads != 0 || o_.k_dim <= 0 || o_.v_dim <= 0) {
    throw FormatError("gated delta-net: value heads must be a positive multiple of key heads, head dims positive");
  }
  const int64_t key_dim = o_.k_heads * o_.k_dim, value_dim = o_.v_heads * o_.v_dim;
  conv1d_ = std::make_unique<CausalConv1d>(2 * key_dim + value_dim, o_.conv_kernel, false);
  norm_ = std::make_unique<NormWeight>(o_.v_dim);
  out_proj_ = std::make_unique<Linear>(value_dim, o_.hidden, false);
  register_module("conv1d", *conv1d_);
  auto linear = [&](const char* name, int64_t out, std::unique_ptr<Linear>& slot) {
    slot = std::make_unique<Linear>(o_.hidden, out, false);
    register_module(name, *slot);
  };
  if (o_.split_projections) {
    linear("in_proj_qkv", 2 * key_dim + value_dim, in_proj_qkv_);
    linear("in_proj_z", value_dim, in_proj_z_);
    linear("in_proj_b", o_.v_heads, in_proj_b_);
    linear("in_proj_a", o_.v_heads, in_proj_a_);
  } else {
    linear("in_proj_qkvz", 2 * key_dim + 2 * value_dim, in_proj_qkvz_);
    linear("in_proj_ba", 2 * o_.v_heads, in_proj_ba_);
  }
  register_parameter("dt_bias", dt_bias_, {o_.v_heads});
  register_parameter("A_log", a_log_, {o_.v_heads});
  register_module("norm", *norm_);
  register_module("out_proj", *out_proj_);
}

Tensor GatedDeltaNet::forward(const Tensor& x, StateCache* cache) const {
  if (cache) cache->expect_arrays(cache_arrays(), "gated delta-net");
  const int64_t B = x.dim(0), L = x.dim(1), Hk = o_.k_heads, Hv = o_.v_heads, K = o_.k_dim, V = o_.v_dim;
  const int64_t r = Hv / Hk, key_dim = Hk * K, value_dim = Hv * V;
  auto flat = [&](const Tensor& t, int64_t n) { return t.contiguous().reshape({B, L, n}); };
  Tensor mixed, z_all, b_all, a_all;  // [B, L, 2 key_dim + value_dim], [B, L, value_dim], [B, L, Hv] x 2
  if (o_.split_projections) {
    mixed = in_proj_qkv_->forward(x);
    z_all = in_proj_z_->forward(x);
    b_all = in_proj_b_->forward(x);
    a_all = in_proj_a_->forward(x);
  } else {
    // Grouped per key head: [q (K), k (K), v (r V), z (r V)] and [b (r), a (r)].
    Tensor qkvz = in_proj_qkvz_->forward(x).reshape({B, L, Hk, 2 * K + 2 * r * V});
    std::vector<Tensor> p = ops::split(qkvz, {K, K, r * V, r * V}, 3);
    std::vector<Tensor> ba = ops::split(in_proj_ba_->forward(x).reshape({B, L, Hk, 2 * r}), {r, r}, 3);
    mixed = ops::concat({flat(p[0], key_dim), flat(p[1], key_dim), flat(p[2], value_dim)}, 2);
    z_all = flat(p[3], value_dim);
    b_all = flat(ba[0], Hv);
    a_all = flat(ba[1], Hv);
  }
  Tensor conv_state = cache ? cache->get(0) : Tensor();
  std::vector<Tensor> qkv =
      ops::split(ops::silu(conv1d_->forward(mixed, conv_state)), {key_dim, key_dim, value_dim}, 2);
  Tensor q = ops::mul(l2_normalize(qkv[0].contiguous().reshape({B, L, Hk, K})), 1.0 / std::sqrt(static_cast<double>(K)));
  Tensor k = l2_normalize(qkv[1].contiguous().reshape({B, L, Hk, K}));
  Tensor v = qkv[2].contiguous().reshape({B, L, Hv, V});
  Tensor beta = ops::sigmoid(b_all);
  Tensor g = ops::mul(ops::neg(ops::exp(a_log_.to(Dtype::f32))),
                      ops::softplus(ops::add(a_all, dt_bias_.to(Dtype::f32))));  // [B, L, Hv]
  Tensor state = cache ? cache->get(1) : Tensor();
  if (!state.defined()) state = Tensor::zeros({B, Hv, K, V}, Dtype::f32, x.device());
  Tensor out = ops::gated_delta_scan(q, k, v, g, beta, state);  // [B, L, Hv, V]
  if (cache) {
    cache->set(0, conv_state);
    cache->set(1, state);
    cache->advance(L);
  }
  // RMSNorm per head, scaled, then gated by silu(z).
  Tensor z = z_all.contiguous().reshape({B, L, Hv, V});
  Tensor normed = ops::mul(ops::rms_norm(out, norm_->weight, o_.norm_eps), ops::silu(z));
  return out_proj_->forward(normed.reshape({B, L, value_dim}));
}

}  // namespace lmx::nn
