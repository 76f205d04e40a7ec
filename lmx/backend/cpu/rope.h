// Rotary position embedding over f32 activations viewed as [batch, heads, seq, head_dim].
#pragma once

#include <cstdint>

#include "lmx/base/thread_pool.h"
#include "lmx/core/kernel_args.h"

namespace lmx::cpu {

using kernels::RopeOptions;


// out = rope(x). x and out may alias exactly (in place, same strides).
// Angles are computed as HF does: float(position) * inv_freq[i] rounded to f32, then
// cos/sin of that f32 angle (times mscale); then
//   non-traditional: o[i] = x[i] c - x[i+d/2] s,  o[i+d/2] = x[i+d/2] c + x[i] s
//   traditional:     o[2i] = x[2i] c - x[2i+1] s, o[2i+1] = x[2i+1] c + x[2i] s.
void rope(const float* x, float* out, const RopeOptions& options, ThreadPool& pool);

}  // namespace lmx::cpu
