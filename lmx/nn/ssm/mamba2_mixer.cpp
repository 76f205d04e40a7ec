#include "lmx/nn/ssm/mamba2_mixer.h"

#include <cmath>

#include "lmx/base/error.h"
#include "lmx/core/ops/elementwise.h"
#include "lmx/core/ops/nn.h"
#include "lmx/core/ops/shape.h"
#include "lmx/core/ops/ssm.h"

namespace lmx::nn {

Mamba2Mixer::Mamba2Mixer(const Mamba2Options& o) : o_(o) {
  if (o_.heads <= 0 || o_.head_dim <= 0 || o_.state <= 0 || o_.groups <= 0 || o_.heads % o_.groups != 0) {
    throw FormatError("mamba2: heads, head_dim, state and groups must be positive, heads a multiple of groups");
  }
  if (o_.intermediate <= 0) o_.intermediate = o_.heads * o_.head_dim;
  if (o_.intermediate != o_.heads * o_.head_dim) {
    throw FormatError("mamba2: intermediate size " + std::to_string(o_.intermediate) + " != heads * head_dim " +
                      std::to_string(o_.heads * o_.head_dim));
  }
  if (o_.norm_groups <= 0 || o_.intermediate % o_.norm_groups != 0) {
    throw FormatError("mamba2: the gated norm's groups must divide the intermediate size");
  }
  conv_dim_ = o_.intermediate + 2 * o_.groups * o_.state;
  in_proj_ = std::make_unique<Linear>(o_.hidden, o_.intermediate + conv_dim_ + o_.heads, o_.bias);
  conv1d_ = std::make_unique<CausalConv1d>(conv_dim_, o_.conv_kernel, o_.conv_bias, o_.conv_mlx_layout);
  out_proj_ = std::make_unique<Linear>(o_.intermediate, o_.hidden, o_.bias);
  register_module("in_proj", *in_proj_);
  register_module("conv1d", *conv1d_);
  register_parameter("dt_bias", dt_bias_, {o_.heads});
  register_parameter("A_log", a_log_, {o_.heads});
  register_parameter("D", d_, {o_.heads});
  if (o_.gated_norm) {
    norm_ = std::make_unique<GatedNorm>(o_.intermediate);
    register_module("norm", *norm_);
  }
  register_module("out_proj", *out_proj_);
}

Tensor Mamba2Mixer::forward(const Tensor& x, StateCache* cache) const {
  const int64_t B = x.dim(0), L = x.dim(1), H = o_.heads, P = o_.head_dim, N = o_.state, G = o_.groups;
  const int64_t I = o_.intermediate;
  if (cache) cache->expect_arrays(cache_arrays(), "mamba2");
  std::vector<Tensor> parts = ops::split(in_proj_->forward(x), {I, conv_dim_, H}, -1);
  Tensor conv_state = cache ? cache->get(0) : Tensor();
  Tensor xbc = ops::silu(conv1d_->forward(parts[1], conv_state));  // [B, L, conv_dim]
  std::vector<Tensor> xs = ops::split(xbc, {I, G * N, G * N}, -1);
  Tensor dt = ops::softplus(ops::add(parts[2], dt_bias_.to(Dtype::f32)));  // [B, L, H]
  if (o_.dt_min > 0.0f || std::isfinite(o_.dt_max)) dt = ops::clamp(dt, o_.dt_min, o_.dt_max);
  Tensor a = ops::neg(ops::exp(a_log_.to(Dtype::f32))).reshape({H, 1}).expand({H, N});
  Tensor ssm_state = cache ? cache->get(1) : Tensor();
  if (!ssm_state.defined()) ssm_state = Tensor::zeros({B, H, P, N}, Dtype::f32, x.device());
  Tensor y = ops::ssm_scan(xs[0].reshape({B, L, H, P}), dt, a, xs[1].reshape({B, L, G, N}),
                           xs[2].reshape({B, L, G, N}), d_, ssm_state);  // [B, L, H, P]
  if (cache) {
    cache->set(0, conv_state);
    cache->set(1, ssm_state);
    cache->advance(L);
  }
  // Gated RMSNorm: normalize y * silu(gate) (or y, gated after) per group of channels, then scale.
  const Tensor gate = ops::silu(parts[0]);
  Tensor out = y.reshape({B, L, I});
  if (!o_.norm_before_gate || !norm_) out = ops::mul(out, gate);
  if (norm_) {
    const int64_t ng = o_.norm_groups;
    out = ops::mul(ops::rms_norm(out.reshape({B, L, ng, I / ng}), Tensor(), o_.norm_eps).reshape({B, L, I}),
                   norm_->weight);
    if (o_.norm_before_gate) out = ops::mul(out, gate);
  }
  return out_proj_->forward(out);
}

}  // namespace lmx::nn
