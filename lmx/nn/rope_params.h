// What RotaryEmbedding::apply hands ops::rope, for fused kernels that rotate as it does
// (ops::rope_append of a CUDA decode step).
#pragma once

#include <cstdint>

#include "lmx/core/ops/nn.h"
#include "lmx/nn/rope.h"

namespace lmx::nn {

// The rope op's parameters for `seq` tokens at `offset` on `device` (the frequencies on
// that device, kept there between calls).
ops::RopeParams rope_params(const RotaryEmbedding& rope, int64_t offset, int64_t seq, Device device);

}  // namespace lmx::nn
