// Qwen3-Next's linear attention (gated delta-net): in_proj_qkvz / in_proj_ba (grouped
// per key head; Qwen3.5: four separate projections), a depthwise causal conv + SiLU over q k v, L2-normalized q and k, the
// gated delta rule (ops::gated_delta_scan) with decay g = -exp(A_log) * softplus(a +
// dt_bias) and write strength beta = sigmoid(b), a per-head RMSNorm gated by silu(z),
// out_proj. The cache is a StateCache of two arrays: conv [batch, kernel - 1, 2 * key_dim
// + value_dim], state [batch, value_heads, key_head_dim, value_head_dim].
#pragma once

#include <memory>

#include "lmx/nn/linear.h"
#include "lmx/nn/ssm/causal_conv.h"
#include "lmx/nn/ssm/recurrent_mixer.h"

namespace lmx::nn {

struct GatedDeltaNetOptions {
  int64_t hidden = 0;
  int64_t k_heads = 0, v_heads = 0;
  int64_t k_dim = 0, v_dim = 0;  // per head
  int64_t conv_kernel = 4;
  float norm_eps = 1e-6f;
  // Qwen3.5: separate in_proj_qkv ([q | k | v] over all heads), in_proj_z, in_proj_b and
  // in_proj_a instead of the two grouped projections.
  bool split_projections = false;
};

class GatedDeltaNet : public RecurrentMixer {
 public:
  explicit GatedDeltaNet(const GatedDeltaNetOptions& o);
  Tensor forward(const Tensor& x, StateCache* cache) const override;
  size_t cache_arrays() const override { return 2; }

 private:
  GatedDeltaNetOptions o_;
  std::unique_ptr<Linear> in_proj_qkvz_, in_proj_ba_, out_proj_;
  std::unique_ptr<Linear> in_proj_qkv_, in_proj_z_, in_proj_b_, in_proj_a_;  // split_projections
  std::unique_ptr<CausalConv1d> conv1d_;
  Tensor dt_bias_, a_log_;  // [v_heads]
  struct NormWeight : Module {
    explicit NormWeight(int64_t dim) { register_parameter("weight", weight, {dim}); }
    Tensor weight;
  };
  std::unique_ptr<NormWeight> norm_;
};

}  // namespace lmx::nn
