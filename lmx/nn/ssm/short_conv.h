// LFM2's gated short convolution: in_proj -> (B, C, x); y = C * conv(B * x) with a
// depthwise causal conv of a few taps; out_proj. Its cache is a StateCache of one array,
// the last kernel - 1 values of B * x [batch, kernel - 1, hidden].
#pragma once

#include <memory>

#include "lmx/nn/linear.h"
#include "lmx/nn/ssm/causal_conv.h"
#include "lmx/nn/ssm/recurrent_mixer.h"

namespace lmx::nn {

class ShortConv : public RecurrentMixer {
 public:
  ShortConv(int64_t hidden, int64_t kernel, bool bias);
  Tensor forward(const Tensor& x, StateCache* cache) const override;
  size_t cache_arrays() const override { return 1; }

 private:
  int64_t hidden_;
  std::unique_ptr<Linear> in_proj_, out_proj_;
  std::unique_ptr<CausalConv1d> conv_;
};

}  // namespace lmx::nn
