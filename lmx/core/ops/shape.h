// Ops that rearrange data without arithmetic: concatenation, stacking, splitting.
// (Views such as reshape, transpose, slice and expand are Tensor methods.)
#pragma once

#include <vector>

#include "lmx/core/tensor.h"

namespace lmx::ops {

// Joins tensors of equal dtype along `axis`; all other dims must match.
Tensor concat(const std::vector<Tensor>& xs, int axis);
// Joins tensors of equal shape along a new axis.
Tensor stack(const std::vector<Tensor>& xs, int axis);
// Views of consecutive pieces of the given sizes along `axis` (sizes sum to dim(axis)).
std::vector<Tensor> split(const Tensor& x, const std::vector<int64_t>& sizes, int axis);
// Repeats each slice along `axis` `repeats` times in place (GQA head expansion):
// [a, b] -> [a, a, b, b] for repeats = 2.
Tensor repeat_interleave(const Tensor& x, int64_t repeats, int axis);

}  // namespace lmx::ops
