// The interface attention layers use to keep keys and values between calls. The kinds
// (simple, rotating, quantized, chunked) live in lmx/generate; a model only says which
// it needs (make_cache) and calls update_and_fetch.
#pragma once

#include <memory>
#include <utility>
#include <vector>

#include "lmx/core/tensor.h"

namespace lmx::nn {

class KVCache {
 public:
  virtual ~KVCache() = default;
  // Number of tokens seen so far (the absolute position of the next token).
  virtual int64_t offset() const = 0;
  // Appends keys / values [batch, kv_heads, new_tokens, head_dim] and returns the keys
  // and values to attend over. Key j of the result sits at absolute position
  // `first_position() + j`.
  virtual std::pair<Tensor, Tensor> update_and_fetch(const Tensor& keys, const Tensor& values) = 0;
  // Absolute position of the first key returned by the last update_and_fetch.
  virtual int64_t first_position() const { return 0; }
};

using KVCacheList = std::vector<std::unique_ptr<KVCache>>;

}  // namespace lmx::nn
