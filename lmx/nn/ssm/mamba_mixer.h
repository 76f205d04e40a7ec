// Mamba's (v1) mixer: in_proj -> (x, gate); depthwise causal conv + SiLU over x;
// x_proj -> (dt rank, B, C); dt_proj + softplus; the selective scan with a decay per
// (channel, state); y * silu(gate); out_proj. Jamba adds RMSNorms on dt, B and C
// (inner_norms). The cache is a StateCache of two arrays: conv [batch, kernel - 1,
// intermediate], ssm [batch, intermediate, 1, state].
#pragma once

#include <memory>

#include "lmx/nn/linear.h"
#include "lmx/nn/norm.h"
#include "lmx/nn/ssm/causal_conv.h"
#include "lmx/nn/ssm/recurrent_mixer.h"

namespace lmx::nn {

struct MambaOptions {
  int64_t hidden = 0;
  int64_t intermediate = 0;
  int64_t state = 16;
  int64_t conv_kernel = 4;
  int64_t dt_rank = 0;
  bool bias = false;       // in_proj / out_proj
  bool conv_bias = true;
  bool inner_norms = false;  // Jamba: dt_layernorm, b_layernorm, c_layernorm
  float norm_eps = 1e-6f;
};

class MambaMixer : public RecurrentMixer {
 public:
  explicit MambaMixer(const MambaOptions& o);
  Tensor forward(const Tensor& x, StateCache* cache) const override;
  size_t cache_arrays() const override { return 2; }

 private:
  MambaOptions o_;
  std::unique_ptr<Linear> in_proj_, x_proj_, dt_proj_, out_proj_;
  std::unique_ptr<CausalConv1d> conv1d_;
  std::unique_ptr<RMSNorm> dt_norm_, b_norm_, c_norm_;
  Tensor a_log_;  // [intermediate, state]
  Tensor d_;      // [intermediate]
};

}  // namespace lmx::nn
