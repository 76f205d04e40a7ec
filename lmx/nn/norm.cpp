#include "lmx/nn/norm.h"

#include "lmx/core/ops/nn.h"

namespace lmx::nn {

RMSNorm::RMSNorm(int64_t dim, float eps, bool unit_offset) : eps_(eps), unit_offset_(unit_offset) {
  register_parameter("weight", weight_, {dim});
}

Tensor RMSNorm::forward(const Tensor& x) const { return ops::rms_norm(x, weight_, eps_, unit_offset_); }

LayerNorm::LayerNorm(int64_t dim, float eps, bool bias) : eps_(eps) {
  register_parameter("weight", weight_, {dim});
  if (bias) register_parameter("bias", bias_, {dim});
}

Tensor LayerNorm::forward(const Tensor& x) const { return ops::layer_norm(x, weight_, bias_, eps_); }

Norm::Norm(NormKind kind, int64_t dim, float eps, bool unit_offset, bool bias) {
  // Registered under the parent's name directly: Norm is a transparent wrapper.
  if (kind == NormKind::rms) {
    rms_ = std::make_unique<RMSNorm>(dim, eps, unit_offset);
    register_module("", *rms_);
  } else {
    ln_ = std::make_unique<LayerNorm>(dim, eps, bias);
    register_module("", *ln_);
  }
}

}  // namespace lmx::nn
