#include "lmx/nn/altup.h"

#include <cmath>

#include "lmx/base/error.h"
#include "lmx/core/ops/elementwise.h"
#include "lmx/core/ops/reduce.h"

namespace lmx::nn {
namespace {

// Column j of c [B, L, n] as [B, L, 1].
Tensor column(const Tensor& c, int64_t j) { return c.slice(2, j, j + 1).contiguous(); }

Tensor root_mean_square(const Tensor& x) { return ops::sqrt(ops::mean(ops::square(x), -1, true)); }

// p rescaled to the root mean square `target` [B, L, 1].
Tensor rescaled(const Tensor& p, const Tensor& target) {
  const Tensor rms = ops::sqrt(ops::binary(ops::BinaryOp::maximum, ops::mean(ops::square(p), -1, true), 1e-5));
  return ops::div(ops::mul(p, target), rms);
}

}  // namespace

AltUp::AltUp(const AltUpOptions& o) : o_(o) {
  if (o.hidden <= 0 || o.streams < 2 || o.active < 0 || o.active >= o.streams) {
    throw FormatError("altup: needs at least 2 streams and an active index among them (streams " +
                      std::to_string(o.streams) + ", active " + std::to_string(o.active) + ")");
  }
  const int64_t n = o.streams;
  register_parameter("correct_output_scale", correct_output_scale_, {o.hidden});
  correction_coefs_ = std::make_unique<Linear>(n, n, false);
  prediction_coefs_ = std::make_unique<Linear>(n, n * n, false);
  modality_router_ = std::make_unique<Linear>(o.hidden, n, false);
  router_norm_ = std::make_unique<RMSNorm>(o.hidden, o.norm_eps);
  register_module("correction_coefs", *correction_coefs_);
  register_module("prediction_coefs", *prediction_coefs_);
  register_module("modality_router", *modality_router_);
  register_module("router_norm", *router_norm_);
}

Tensor AltUp::modalities(const Tensor& x) const {
  const Tensor routed = modality_router_->forward(ops::mul(router_norm_->forward(x), 1.0 / static_cast<double>(o_.hidden)));
  return ops::tanh(routed);
}

std::vector<Tensor> AltUp::predict(const std::vector<Tensor>& x) const {
  const int64_t n = o_.streams;
  if (static_cast<int64_t>(x.size()) != n) throw InternalError("altup: wrong number of streams");
  const Tensor c = prediction_coefs_->forward(modalities(x[static_cast<size_t>(o_.active)]));  // [B, L, n * n]
  std::vector<Tensor> out;
  for (int64_t j = 0; j < n; ++j) {
    Tensor sum = ops::mul(x[0], column(c, j * n));
    for (int64_t i = 1; i < n; ++i) sum = ops::add(sum, ops::mul(x[static_cast<size_t>(i)], column(c, j * n + i)));
    out.push_back(ops::add(sum, x[static_cast<size_t>(j)]));
  }
  return out;
}

std::vector<Tensor> AltUp::correct(const std::vector<Tensor>& predictions, const Tensor& activated) const {
  const Tensor c = ops::add(correction_coefs_->forward(modalities(activated)), 1.0);  // [B, L, n]
  const Tensor innovation = ops::sub(activated, predictions[static_cast<size_t>(o_.active)]);
  std::vector<Tensor> out;
  for (int64_t j = 0; j < o_.streams; ++j) {
    out.push_back(ops::add(ops::mul(innovation, column(c, j)), predictions[static_cast<size_t>(j)]));
  }
  return out;
}

Tensor AltUp::scale_output(const Tensor& x) const { return ops::mul(x, correct_output_scale_); }

std::vector<Tensor> altup_expand(const Tensor& x, std::span<const std::unique_ptr<Linear>> projections) {
  const Tensor target = root_mean_square(x);
  std::vector<Tensor> streams{x};
  for (const auto& p : projections) streams.push_back(rescaled(p->forward(x), target));
  return streams;
}

Tensor altup_collapse(const std::vector<Tensor>& streams, std::span<const std::unique_ptr<Linear>> projections) {
  if (streams.size() != projections.size() + 1) throw InternalError("altup: wrong number of streams");
  const Tensor target = root_mean_square(streams[0]);
  Tensor sum = streams[0];
  for (size_t i = 0; i < projections.size(); ++i) {
    sum = ops::add(sum, rescaled(projections[i]->forward(streams[i + 1]), target));
  }
  return ops::div(sum, static_cast<double>(streams.size()));
}

}  // namespace lmx::nn
