// Griffin's recurrent block (RecurrentGemma's "temporal_block" on recurrent layers):
// y = act(linear_y(x)) (gelu_tanh); u = conv_1d(linear_x(x)) through the RG-LRU, a gated
// linear recurrence with one decay per channel,
//   a_t = exp(-8 * sigmoid(W_a u_t + b_a) * softplus(recurrent_param)),
//   h_t = a_t h_{t-1} + sqrt(1 - a_t^2) * sigmoid(W_x u_t + b_x) * u_t
// (the gates block-diagonal over `heads` blocks; at position 0 the state restarts and the
// input is not rescaled); out = linear_out(h * y). The cache is a StateCache of two
// arrays: conv [batch, kernel - 1, width], state [batch, width, 1, 1].
#pragma once

#include <memory>

#include "lmx/nn/linear.h"
#include "lmx/nn/mlp.h"
#include "lmx/nn/ssm/causal_conv.h"
#include "lmx/nn/ssm/recurrent_mixer.h"

namespace lmx::nn {

struct RgLruOptions {
  int64_t hidden = 0;
  int64_t width = 0;  // lru_width
  int64_t heads = 0;  // blocks of the gates' block-diagonal weights
  int64_t conv_kernel = 4;
  Activation act = Activation::gelu_tanh;  // of the y branch (hidden_activation)
};

class RgLruBlock : public RecurrentMixer {
 public:
  explicit RgLruBlock(const RgLruOptions& o);
  Tensor forward(const Tensor& x, StateCache* cache) const override;
  size_t cache_arrays() const override { return 2; }

 private:
  // sigmoid(x W[h] + b[h]) per block h: x [B, L, width] -> [B, L, width].
  Tensor gate(const Tensor& x, const Tensor& weight, const Tensor& bias) const;

  RgLruOptions o_;
  std::unique_ptr<Linear> linear_x_, linear_y_, linear_out_;
  std::unique_ptr<CausalConv1d> conv_;
  Tensor recurrent_param_;                     // [width]
  Tensor input_gate_weight_, recurrent_gate_weight_;  // [heads, block, block], x @ W
  Tensor input_gate_bias_, recurrent_gate_bias_;      // [heads, block]
  struct Lru : Module {
    using Module::register_parameter;
  };
  Lru lru_;  // "rg_lru"
};

}  // namespace lmx::nn
