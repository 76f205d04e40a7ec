// A low-rank adapter on a Linear, applied without fusing: y = base(x) + scale * (x @ a) @ b
// with mlx-lm's shapes, a [in, rank] and b [rank, out]. Training keeps its own copies as
// autograd leaves (lmx/train/lora.h); this is what inference attaches.
#pragma once

#include "lmx/core/tensor.h"

namespace lmx::nn {

struct LoraWeights {
  Tensor a;  // [in, rank]
  Tensor b;  // [rank, out]
  float scale = 1.0f;
};

// scale * (x @ a) @ b for x [..., in] -> [..., out] (f32).
Tensor lora_delta(const LoraWeights& lora, const Tensor& x);

}  // namespace lmx::nn
