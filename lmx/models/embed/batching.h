// Batching for the caller: inputs sorted by length (longest first), right-padded into
// micro-batches of at most `max_batch_tokens` padded tokens, each run through `fn`, and
// the rows put back in input order.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "lmx/models/embed/encoder.h"

namespace lmx::models::embed {

struct TokenInput {
  std::vector<int32_t> ids;
  std::vector<int32_t> type_ids;  // empty: all 0
};

// fn(batch) -> f32 [rows of the batch, dim]; the result is f32 [inputs, dim]. Every input
// must be non-empty (InvalidArgument naming its index).
Tensor run_in_batches(std::span<const TokenInput> inputs, int32_t pad_id, int64_t max_batch_tokens,
                      const std::function<Tensor(const TokenBatch&)>& fn,
                      const std::function<void(size_t, size_t)>& progress = {});

// Cuts `input` to `max_length` ids (types too); true when it was longer.
bool truncate_input(TokenInput& input, int64_t max_length);

}  // namespace lmx::models::embed
