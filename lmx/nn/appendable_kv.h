// A KV cache whose f32 buffers a fused kernel may write into directly (a CUDA decode
// step's RoPE + append, ops::rope_append): the plain cache of lmx/generate. Attention
// finds it by dynamic_cast; other caches take update_and_fetch.
#pragma once

#include <cstdint>
#include <utility>

#include "lmx/core/tensor.h"

namespace lmx::nn {

class AppendableKV {
 public:
  virtual ~AppendableKV() = default;
  // The key / value buffers [B, H, capacity, D] with room for `keys`' tokens at offset()
  // (grown first when needed; keys / values only give the shapes).
  virtual std::pair<Tensor, Tensor> reserve(const Tensor& keys, const Tensor& values) = 0;
  // Counts n tokens written at offset() and returns the valid views, as update_and_fetch.
  virtual std::pair<Tensor, Tensor> commit(int64_t n) = 0;
};

}  // namespace lmx::nn
