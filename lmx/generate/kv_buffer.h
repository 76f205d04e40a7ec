// The growing key/value buffers shared by the simple and batch caches: capacity grows
// in steps (zero-filled, so masked slots never hold NaN) and new positions are copied
// in at the offset.
#pragma once

#include <utility>

#include "lmx/core/tensor.h"

namespace lmx::generate {

// The dtype of fresh cache buffers for these keys: bf16 keys on a GPU (attention chose a
// bf16 cache: bf16 / f16 weights, lmx/nn/attention.cpp) stay bf16; everything else, the
// CPU's caches included, is kept in f32. Buffers that exist keep their dtype, and appends convert to it.
Dtype kv_storage_dtype(const Tensor& keys);

// Appends keys / values [batch, heads, n, dim] at `offset` (advanced by n) and returns
// the valid views [batch, heads, offset, dim].
std::pair<Tensor, Tensor> append_kv(Tensor& keys_buf, Tensor& values_buf, int64_t& offset, const Tensor& keys,
                                    const Tensor& values, int64_t step);
// Grows the buffers (as append_kv does) so that keys' tokens fit at `offset`.
void reserve_kv(Tensor& keys_buf, Tensor& values_buf, int64_t offset, const Tensor& keys, const Tensor& values,
                int64_t step);

}  // namespace lmx::generate
