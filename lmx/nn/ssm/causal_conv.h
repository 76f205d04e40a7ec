// Depthwise causal 1-D convolution over the sequence (Mamba's conv1d, LFM2's short
// convolution, RG-LRU's temporal conv), channels last. Its cache is the last
// kernel - 1 inputs, so a sequence fed in pieces sees the same left context as at once.
#pragma once

#include "lmx/nn/module.h"

namespace lmx::nn {

class CausalConv1d : public Module {
 public:
  // Checkpoint layout of torch's Conv1d(groups = channels): weight [channels, 1, kernel];
  // mlx_layout: MLX's [channels, kernel, 1] (the same values in the same order).
  CausalConv1d(int64_t channels, int64_t kernel, bool bias, bool mlx_layout = false);
  // x [batch, seq, channels] -> [batch, seq, channels] (f32, no activation). state: the
  // previous kernel - 1 inputs [batch, kernel - 1, channels]; undefined means zeros (a
  // fresh sequence). Replaced by the last kernel - 1 inputs including x.
  Tensor forward(const Tensor& x, Tensor& state) const;
  int64_t kernel() const { return kernel_; }

 private:
  int64_t channels_, kernel_;
  Tensor weight_;  // [channels, 1, kernel] or [channels, kernel, 1]
  Tensor bias_;    // [channels] or undefined
};

}  // namespace lmx::nn
