// Mamba2's mixer (state-space duality): in_proj -> (gate, x B C, dt); depthwise causal
// conv + SiLU over x B C; the selective scan with one decay per head; RMSNorm of
// y * silu(gate) (over groups of channels, as the family says; Falcon-H1 may norm y
// before the gate or not at all); out_proj. Shared by mamba2 and the hybrids
// (granitemoehybrid, nemotron_h, falcon_h1). The cache is a
// StateCache of two arrays: conv [batch, kernel - 1, conv_dim], ssm [batch, heads,
// head_dim, state].
#pragma once

#include <limits>
#include <memory>

#include "lmx/nn/linear.h"
#include "lmx/nn/ssm/causal_conv.h"
#include "lmx/nn/ssm/recurrent_mixer.h"

namespace lmx::nn {

struct Mamba2Options {
  int64_t hidden = 0;
  int64_t heads = 0;
  int64_t head_dim = 0;
  int64_t state = 0;          // N
  int64_t groups = 1;         // groups of B / C
  int64_t conv_kernel = 4;
  int64_t intermediate = 0;   // heads * head_dim
  bool bias = false;          // in_proj / out_proj biases
  bool conv_bias = true;
  float norm_eps = 1e-5f;
  int64_t norm_groups = 1;    // the gated RMSNorm normalizes intermediate / norm_groups channels at a time
  bool gated_norm = true;         // false: y * silu(gate) with no norm (and no "norm.weight")
  bool norm_before_gate = false;  // true: norm(y) * silu(gate) (Falcon-H1) instead of norm(y * silu(gate))
  bool conv_mlx_layout = false;   // conv1d weight stored as MLX's [channels, kernel, 1]
  float dt_min = 0.0f, dt_max = std::numeric_limits<float>::infinity();  // time_step_limit
};

class Mamba2Mixer : public RecurrentMixer {
 public:
  explicit Mamba2Mixer(const Mamba2Options& o);
  // x [batch, seq, hidden] -> [batch, seq, hidden]; cache null: a fresh sequence.
  Tensor forward(const Tensor& x, StateCache* cache) const override;
  size_t cache_arrays() const override { return 2; }

 private:
  Mamba2Options o_;
  int64_t conv_dim_;
  std::unique_ptr<Linear> in_proj_, out_proj_;
  std::unique_ptr<CausalConv1d> conv1d_;
  Tensor dt_bias_, a_log_, d_;  // [heads]
  struct GatedNorm : Module {
    explicit GatedNorm(int64_t dim) { register_parameter("weight", weight, {dim}); }
    Tensor weight;
  };
  std::unique_ptr<GatedNorm> norm_;
};

}  // namespace lmx::nn
