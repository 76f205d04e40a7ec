#include "lmx/nn/ssm/rg_lru.h"

#include <limits>

#include "lmx/base/error.h"
#include "lmx/core/ops/elementwise.h"
#include "lmx/core/ops/linalg.h"
#include "lmx/core/ops/shape.h"
#include "lmx/core/ops/ssm.h"

namespace lmx::nn {

RgLruBlock::RgLruBlock(const RgLruOptions& o) : o_(o) {
  if (o_.hidden <= 0 || o_.width <= 0 || o_.heads <= 0 || o_.width % o_.heads != 0 || o_.conv_kernel <= 0) {
    throw FormatError("rg_lru: hidden, width, heads and kernel must be positive, width a multiple of heads");
  }
  const int64_t block = o_.width / o_.heads;
  linear_y_ = std::make_unique<Linear>(o_.hidden, o_.width, true);
  linear_x_ = std::make_unique<Linear>(o_.hidden, o_.width, true);
  linear_out_ = std::make_unique<Linear>(o_.width, o_.hidden, true);
  conv_ = std::make_unique<CausalConv1d>(o_.width, o_.conv_kernel, true);
  register_module("linear_y", *linear_y_);
  register_module("linear_x", *linear_x_);
  register_module("linear_out", *linear_out_);
  register_module("conv_1d", *conv_);
  lru_.register_parameter("recurrent_param", recurrent_param_, {o_.width});
  lru_.register_parameter("input_gate_weight", input_gate_weight_, {o_.heads, block, block});
  lru_.register_parameter("input_gate_bias", input_gate_bias_, {o_.heads, block});
  lru_.register_parameter("recurrent_gate_weight", recurrent_gate_weight_, {o_.heads, block, block});
  lru_.register_parameter("recurrent_gate_bias", recurrent_gate_bias_, {o_.heads, block});
  register_module("rg_lru", lru_);
}

Tensor RgLruBlock::gate(const Tensor& x, const Tensor& weight, const Tensor& bias) const {
  const int64_t B = x.dim(0), L = x.dim(1), H = o_.heads, bw = o_.width / o_.heads;
  Tensor xh = x.reshape({B * L, H, bw}).transpose(0, 1);                       // [H, B L, bw]
  Tensor g = ops::add(ops::matmul(xh, weight.to(Dtype::f32)), bias.to(Dtype::f32).reshape({H, 1, bw}));
  return ops::sigmoid(g.transpose(0, 1).contiguous().reshape({B, L, o_.width}));
}

Tensor RgLruBlock::forward(const Tensor& x, StateCache* cache) const {
  const int64_t B = x.dim(0), L = x.dim(1), W = o_.width;
  if (cache) cache->expect_arrays(cache_arrays(), "rg_lru");
  const bool at_start = !cache || cache->offset() == 0;
  const Tensor y = activate(o_.act, linear_y_->forward(x));
  Tensor conv_state = cache ? cache->get(0) : Tensor();
  const Tensor u = conv_->forward(linear_x_->forward(x), conv_state);  // [B, L, W]
  const Tensor input_gate = gate(u, input_gate_weight_, input_gate_bias_);
  // -log a_t = 8 * sigmoid(...) * softplus(recurrent_param) >= 0: the scan's decay exp(-rate).
  const Tensor rate = ops::mul(ops::mul(gate(u, recurrent_gate_weight_, recurrent_gate_bias_),
                                        ops::softplus(recurrent_param_.to(Dtype::f32))),
                               8.0);
  Tensor scale = ops::sqrt(ops::add(ops::neg(ops::exp(ops::mul(rate, -2.0))), 1.0));  // sqrt(1 - a^2)
  if (at_start) {
    Tensor first = Tensor::full({B, 1, W}, 1.0, Dtype::f32, x.device());
    scale = L > 1 ? ops::concat({first, scale.slice(1, 1, L)}, 1) : first;
  }
  const Tensor input = ops::mul(ops::mul(u, input_gate), scale);
  // h_t = exp(-rate_t) h_{t-1} + input_t as the selective scan with one head per channel,
  // P = N = 1, B = C = 1 and decay -1: it adds rate * x, so x = input / rate (input is 0
  // where the rate underflows to 0, since then a = 1 and sqrt(1 - a^2) = 0).
  const Tensor safe_rate = ops::clamp(rate, std::numeric_limits<float>::min(), std::numeric_limits<float>::infinity());
  const Tensor xs = ops::div(input, safe_rate).reshape({B, L, W, 1});
  const Tensor ones = Tensor::full({B, L, 1, 1}, 1.0, Dtype::f32, x.device());
  const Tensor decay = Tensor::full({W, 1}, -1.0, Dtype::f32, x.device());
  Tensor state = cache ? cache->get(1) : Tensor();
  if (!state.defined()) state = Tensor::zeros({B, W, 1, 1}, Dtype::f32, x.device());
  const Tensor h = ops::ssm_scan(xs, rate, decay, ones, ones, Tensor(), state).reshape({B, L, W});
  if (cache) {
    cache->set(0, conv_state);
    cache->set(1, state);
    cache->advance(L);
  }
  return linear_out_->forward(ops::mul(h, y));
}

}  // namespace lmx::nn
