// Indexing ops: gathering rows (embeddings) and values along an axis.
#pragma once

#include "lmx/core/tensor.h"

namespace lmx::ops {

// Rows of `x` along `axis` picked by integer `indices` (any shape): the result has
// x's shape with dim `axis` replaced by indices' shape. Out-of-range or negative
// indices throw InvalidArgument naming the index.
Tensor take(const Tensor& x, const Tensor& indices, int axis = 0);
// Embedding lookup: table [vocab, dim], ids [...] -> [..., dim].
inline Tensor embedding(const Tensor& table, const Tensor& ids) { return take(table, ids, 0); }
// out[..., j] = x[..., indices[..., j]] along the last axis (NumPy take_along_axis).
Tensor take_along_last_axis(const Tensor& x, const Tensor& indices);

}  // namespace lmx::ops
