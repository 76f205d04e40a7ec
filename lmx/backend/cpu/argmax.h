// Index of the largest value in a row of f32 (greedy sampling over a vocabulary).
#pragma once

#include <cstdint>

namespace lmx::cpu {

// The first index of the maximum of x[0, n), n >= 1, exactly as std::max_element picks it:
// NaN entries are passed over, except that a NaN at x[0] gives 0. (The sampler's greedy
// rule; ops::argmax instead returns the first NaN, as MLX and NumPy do.)
int64_t argmax(const float* x, int64_t n);

}  // namespace lmx::cpu
