// Ops of a captured decode step (lmx/core/step_values.h).
#pragma once

#include "lmx/core/tensor.h"

namespace lmx::ops {

// dst[b, h, p + s, d] = src[b, h, s, d] with p the position of this thread's captured
// decode step, read on the device: a KV cache append that a replayed step graph repeats
// at each token. dst f32 [B, H, capacity, D] on the step's device, src [B, H, S, D]
// (converted to f32). Throws InvalidArgument outside a step.
void write_at_step_position(const Tensor& dst, const Tensor& src);

}  // namespace lmx::ops
