// Reductions along one axis (or all elements), top-k and argsort.
#pragma once

#include <span>
#include <utility>

#include "lmx/core/tensor.h"

namespace lmx::ops {

// Floating results keep the input's float dtype (integers sum to i64, mean to f32);
// accumulation is in double.
Tensor sum(const Tensor& x, int axis, bool keepdims = false);
Tensor mean(const Tensor& x, int axis, bool keepdims = false);
Tensor max(const Tensor& x, int axis, bool keepdims = false);
Tensor min(const Tensor& x, int axis, bool keepdims = false);
// log(sum(exp(x))) computed stably.
Tensor logsumexp(const Tensor& x, int axis, bool keepdims = false);
// Index of the first maximum (i32); NaN counts as the maximum, as in NumPy.
Tensor argmax(const Tensor& x, int axis, bool keepdims = false);
// The first index of the largest of the floats in host memory, as std::max_element picks
// it (NaNs passed over, except that a NaN first gives 0): the sampler's greedy rule, on
// the CPU backend's vector kernel. 0 for fewer than two values.
int64_t greedy_argmax(std::span<const float> x);

// Over all elements (scalar result).
Tensor sum_all(const Tensor& x);
Tensor max_all(const Tensor& x);

// The k largest values along the last axis, sorted descending, with their indices
// (i32); ties keep the lower index first.
std::pair<Tensor, Tensor> top_k(const Tensor& x, int64_t k);
// Indices (i32) that sort the last axis (ascending, stable; descending if asked).
Tensor argsort(const Tensor& x, bool descending = false);

}  // namespace lmx::ops
