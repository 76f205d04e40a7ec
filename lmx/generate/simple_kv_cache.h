// The plain KV cache: keys and values of every position, in buffers that grow in steps
// (256 positions) so appending one token does not copy the history.
#pragma once

#include "lmx/nn/kv_cache.h"

namespace lmx::generate {

class SimpleKVCache : public nn::KVCache {
 public:
  explicit SimpleKVCache(int64_t step = 256) : step_(step) {}
  int64_t offset() const override { return offset_; }
  std::pair<Tensor, Tensor> update_and_fetch(const Tensor& keys, const Tensor& values) override;
  // Drops the last n positions; returns how many were dropped.
  int64_t trim(int64_t n);
  // The valid part of the buffers: [batch, kv_heads, offset, head_dim] each.
  std::pair<Tensor, Tensor> state() const;

 private:
  int64_t step_;
  int64_t offset_ = 0;
  Tensor keys_, values_;  // [batch, kv_heads, capacity, head_dim]
};

}  // namespace lmx::generate
