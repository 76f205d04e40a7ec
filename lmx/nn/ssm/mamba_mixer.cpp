#include "lmx/nn/ssm/mamba_mixer.h"

#include "lmx/base/error.h"
#include "lmx/core/ops/elementwise.h"
#include "lmx/core/ops/shape.h"
#include "lmx/core/ops/ssm.h"

namespace lmx::nn {

MambaMixer::MambaMixer(const MambaOptions& o) : o_(o) {
  if (o_.hidden <= 0 || o_.intermediate <= 0 || o_.state <= 0 || o_.dt_rank <= 0) {
    throw FormatError("mamba: hidden, intermediate, state and dt rank must be positive");
  }
  const int64_t I = o_.intermediate;
  in_proj_ = std::make_unique<Linear>(o_.hidden, 2 * I, o_.bias);
  conv1d_ = std::make_unique<CausalConv1d>(I, o_.conv_kernel, o_.conv_bias);
  x_proj_ = std::make_unique<Linear>(I, o_.dt_rank + 2 * o_.state, false);
  dt_proj_ = std::make_unique<Linear>(o_.dt_rank, I, true);
  out_proj_ = std::make_unique<Linear>(I, o_.hidden, o_.bias);
  register_module("in_proj", *in_proj_);
  register_module("conv1d", *conv1d_);
  register_module("x_proj", *x_proj_);
  register_module("dt_proj", *dt_proj_);
  register_parameter("A_log", a_log_, {I, o_.state});
  register_parameter("D", d_, {I});
  register_module("out_proj", *out_proj_);
  if (o_.inner_norms) {
    dt_norm_ = std::make_unique<RMSNorm>(o_.dt_rank, o_.norm_eps);
    b_norm_ = std::make_unique<RMSNorm>(o_.state, o_.norm_eps);
    c_norm_ = std::make_unique<RMSNorm>(o_.state, o_.norm_eps);
    register_module("dt_layernorm", *dt_norm_);
    register_module("b_layernorm", *b_norm_);
    register_module("c_layernorm", *c_norm_);
  }
}

Tensor MambaMixer::forward(const Tensor& x, StateCache* cache) const {
  const int64_t B = x.dim(0), L = x.dim(1), I = o_.intermediate, N = o_.state;
  if (cache) cache->expect_arrays(cache_arrays(), "mamba");
  std::vector<Tensor> xz = ops::split(in_proj_->forward(x), {I, I}, -1);
  Tensor conv_state = cache ? cache->get(0) : Tensor();
  Tensor u = ops::silu(conv1d_->forward(xz[0], conv_state));  // [B, L, I]
  std::vector<Tensor> p = ops::split(x_proj_->forward(u), {o_.dt_rank, N, N}, -1);
  Tensor dt_in = p[0], b = p[1], c = p[2];
  if (o_.inner_norms) {
    dt_in = dt_norm_->forward(dt_in);
    b = b_norm_->forward(b);
    c = c_norm_->forward(c);
  }
  Tensor dt = ops::softplus(dt_proj_->forward(dt_in));  // [B, L, I]
  Tensor a = ops::neg(ops::exp(a_log_.to(Dtype::f32)));  // [I, N]
  Tensor ssm_state = cache ? cache->get(1) : Tensor();
  if (!ssm_state.defined()) ssm_state = Tensor::zeros({B, I, 1, N}, Dtype::f32, x.device());
  // Each channel is a head of dimension 1 sharing one group of B / C.
  Tensor y = ops::ssm_scan(u.reshape({B, L, I, 1}), dt, a, b.reshape({B, L, 1, N}), c.reshape({B, L, 1, N}), d_,
                           ssm_state);
  if (cache) {
    cache->set(0, conv_state);
    cache->set(1, ssm_state);
    cache->advance(L);
  }
  return out_proj_->forward(ops::mul(y.reshape({B, L, I}), ops::silu(xz[1])));
}

}  // namespace lmx::nn
