// A low-rank adapter on a Linear, applied without fusing: y = base(x) + scale * (x @ a) @ b
// with mlx-lm's shapes, a [in, rank] and b [rank, out]. DoRA also rescales each output
// before the bias: y = magnitude_scale * (W x + scale * (x @ a) @ b) + bias. Training keeps its own copies as
// autograd leaves (lmx/train/lora.h); this is what inference attaches.
#pragma once

#include "lmx/core/tensor.h"

namespace lmx::nn {

struct LoraWeights {
  Tensor a;  // [in, rank]
  Tensor b;  // [rank, out]
  float scale = 1.0f;
  Tensor magnitude_scale;  // DoRA: m / ||W + scale * (a b)^T||_row, f32 [out]; else undefined
};

// scale * (x @ a) @ b for x [..., in] -> [..., out] (f32).
Tensor lora_delta(const LoraWeights& lora, const Tensor& x);

}  // namespace lmx::nn
