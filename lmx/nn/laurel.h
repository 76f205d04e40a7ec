// LAuReL (learned augmented residual layer, Gemma 3n): x + norm(right(left(x))), a
// low-rank branch beside a layer's attention.
#pragma once

#include <memory>

#include "lmx/nn/linear.h"
#include "lmx/nn/norm.h"

namespace lmx::nn {

class Laurel : public Module {
 public:
  Laurel(int64_t hidden, int64_t rank, float norm_eps);
  Tensor forward(const Tensor& x) const;

 private:
  std::unique_ptr<Linear> left_, right_;
  std::unique_ptr<RMSNorm> norm_;
};

}  // namespace lmx::nn
