#include "lmx/nn/norm.h"

#include "lmx/base/error.h"
#include "lmx/core/ops/elementwise.h"
#include "lmx/core/ops/nn.h"
#include "lmx/core/ops/shape.h"

namespace lmx::nn {

RMSNorm::RMSNorm(int64_t dim, float eps, bool unit_offset, bool weight) : eps_(eps), unit_offset_(unit_offset) {
  if (weight) register_parameter("weight", weight_, {dim});
}

Tensor RMSNorm::forward(const Tensor& x) const { return ops::rms_norm(x, weight_, eps_, unit_offset_); }

Tensor RMSNorm::forward_sum(const Tensor& x, const Tensor& residual, Tensor* sum) const {
  return ops::add_rms_norm(x, residual, weight_, eps_, unit_offset_, sum);
}

ops::LinearInput RMSNorm::deferred(const Tensor& x, const Tensor& residual, Tensor* sum) const {
  return ops::LinearInput::rms_normed(x, residual, weight_, eps_, unit_offset_, sum);
}

LayerNorm::LayerNorm(int64_t dim, float eps, bool bias) : eps_(eps) {
  register_parameter("weight", weight_, {dim});
  if (bias) register_parameter("bias", bias_, {dim});
}

Tensor LayerNorm::forward(const Tensor& x) const { return ops::layer_norm(x, weight_, bias_, eps_); }

Norm::Norm(NormKind kind, int64_t dim, float eps, bool unit_offset, bool bias, bool weight) {
  // Registered under the parent's name directly: Norm is a transparent wrapper.
  if (kind == NormKind::rms) {
    rms_ = std::make_unique<RMSNorm>(dim, eps, unit_offset, weight);
    register_module("", *rms_);
  } else {
    ln_ = std::make_unique<LayerNorm>(dim, eps, bias);
    register_module("", *ln_);
  }
}

Tensor Norm::forward_sum(const Tensor& x, const Tensor& residual, Tensor* sum) const {
  if (rms_) return rms_->forward_sum(x, residual, sum);
  *sum = ops::add(x, residual);
  return ln_->forward(*sum);
}

ops::LinearInput Norm::deferred(const Tensor& x, const Tensor& residual, Tensor* sum) const {
  if (rms_) return rms_->deferred(x, residual, sum);
  return residual.defined() ? forward_sum(x, residual, sum) : forward(x);
}

PerHeadLayerNorm::PerHeadLayerNorm(int64_t heads, int64_t dim, float eps, bool split)
    : heads_(heads), dim_(dim), eps_(eps) {
  if (!split) {
    register_parameter("weight", weight_, {heads, dim});
    return;
  }
  weights_.resize(static_cast<size_t>(heads));
  for (int64_t h = 0; h < heads; ++h) {
    register_parameter("norms." + std::to_string(h) + ".weight", weights_[static_cast<size_t>(h)], {dim});
  }
}

Tensor PerHeadLayerNorm::forward(const Tensor& x) const {
  if (x.ndim() != 4 || x.dim(1) != heads_ || x.dim(3) != dim_) {
    throw ShapeError("per-head layer norm: input " + shape_str(x.shape()) + " must be [batch, " +
                     std::to_string(heads_) + ", seq, " + std::to_string(dim_) + "]");
  }
  Tensor w = weight_;  // [heads, dim]
  if (!weights_.empty()) {
    std::vector<Tensor> rows;
    for (const auto& t : weights_) rows.push_back(t.unsqueeze(0));
    w = ops::concat(rows, 0);
  }
  Tensor normed = ops::layer_norm(x, Tensor(), Tensor(), eps_);
  return ops::mul(normed, w.to(Dtype::f32).reshape({1, heads_, 1, dim_}));
}

}  // namespace lmx::nn
