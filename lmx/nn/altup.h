// AltUp (alternating updates, Gemma 3n): the residual stream is kept as `streams` copies
// of the hidden state; a layer runs on the active one only. predict() mixes the streams
// before the layer, correct() spreads the layer's change to every stream, with
// coefficients routed from the token itself (tanh of a projection of the normed state).
#pragma once

#include <memory>
#include <span>
#include <vector>

#include "lmx/nn/linear.h"
#include "lmx/nn/norm.h"

namespace lmx::nn {

struct AltUpOptions {
  int64_t hidden = 0;
  int64_t streams = 4;  // altup_num_inputs
  int64_t active = 0;   // altup_active_idx
  float norm_eps = 1e-6f;
};

class AltUp : public Module {
 public:
  explicit AltUp(const AltUpOptions& o);
  // streams x [B, L, hidden] -> the predictions: x_j + sum_i c_ji x_i.
  std::vector<Tensor> predict(const std::vector<Tensor>& x) const;
  // The predictions and the layer's output for the active one -> every stream moved by
  // (activated - predictions[active]) times its routed coefficient (+ 1).
  std::vector<Tensor> correct(const std::vector<Tensor>& predictions, const Tensor& activated) const;
  // x * correct_output_scale (the corrected active stream, before the per-layer input).
  Tensor scale_output(const Tensor& x) const;
  const AltUpOptions& options() const { return o_; }

 private:
  Tensor modalities(const Tensor& x) const;  // [B, L, streams]

  AltUpOptions o_;
  Tensor correct_output_scale_;  // [hidden]
  std::unique_ptr<Linear> correction_coefs_, prediction_coefs_, modality_router_;
  std::unique_ptr<RMSNorm> router_norm_;
};

// The streams made from one hidden state x: x itself, then projections[i](x) rescaled to
// x's root mean square (each projection's own RMS floored at sqrt(1e-5)).
std::vector<Tensor> altup_expand(const Tensor& x, std::span<const std::unique_ptr<Linear>> projections);
// Back to one hidden state: the mean of stream 0 and projections[i](stream i + 1), each
// rescaled to stream 0's root mean square.
Tensor altup_collapse(const std::vector<Tensor>& streams, std::span<const std::unique_ptr<Linear>> projections);

}  // namespace lmx::nn
