#include "lmx/nn/laurel.h"

#include "lmx/base/error.h"
#include "lmx/core/ops/elementwise.h"

namespace lmx::nn {

Laurel::Laurel(int64_t hidden, int64_t rank, float norm_eps) {
  if (hidden <= 0 || rank <= 0) throw FormatError("laurel: hidden and laurel_rank must be positive");
  left_ = std::make_unique<Linear>(hidden, rank, false);
  right_ = std::make_unique<Linear>(rank, hidden, false);
  norm_ = std::make_unique<RMSNorm>(hidden, norm_eps);
  register_module("linear_left", *left_);
  register_module("linear_right", *right_);
  register_module("post_laurel_norm", *norm_);
}

Tensor Laurel::forward(const Tensor& x) const { return ops::add(x, norm_->forward(right_->forward(left_->forward(x)))); }

}  // namespace lmx::nn
