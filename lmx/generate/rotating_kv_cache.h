// A KV cache of bounded size: the first `keep` positions stay, the rest is a ring of the
// latest max_size - keep positions (mlx-lm's RotatingKVCache, same state layout).
// Windowed attention layers use it with max_size = window, keep = 0; max_kv_size turns
// full-attention layers into rotating caches with keep = 4.
//
// Visibility (make_mask): a query at position p sees a kept key at position j iff
// j <= p and (j < keep or p - j < max_size - keep) and (window == 0 or p - j < window).
// One-token steps write in place and return the ring; longer updates return the ring
// in temporal order (keep, then the latest max_size - 1 - keep positions) followed by
// the new keys, so every new query still sees its full window.
#pragma once

#include "lmx/nn/kv_cache.h"

namespace lmx::generate {

class RotatingKVCache : public nn::KVCache {
 public:
  RotatingKVCache(int64_t max_size, int64_t keep = 0, int64_t step = 256);
  // From saved state (the buffers as stored, ring order) and the ring index.
  RotatingKVCache(const Tensor& keys,
                  const Tensor& values,
                  int64_t max_size,
                  int64_t keep,
                  int64_t offset,
                  int64_t idx,
                  int64_t step = 256);
  int64_t offset() const override { return offset_; }
  std::pair<Tensor, Tensor> update_and_fetch(const Tensor& keys, const Tensor& values) override;
  Tensor make_mask(int64_t q_len, int64_t window) const override;
  bool is_trimmable() const override { return offset_ < max_size_; }
  int64_t trim(int64_t n) override;
  std::vector<Tensor> state() const override;
  // mlx-lm (Python) order: keep, max_size, offset, idx.
  std::vector<std::string> meta_state() const override;
  std::string class_name() const override { return "RotatingKVCache"; }
  std::unique_ptr<nn::KVCache> copy() const override;
  std::unique_ptr<nn::KVCache> heads(int64_t begin, int64_t count) const override;

  int64_t max_size() const { return max_size_; }
  int64_t keep() const { return keep_; }
  int64_t ring_index() const { return idx_; }
  // Absolute position of each key returned by the last update (or of the stored keys).
  std::vector<int64_t> key_positions() const;

 private:
  std::pair<Tensor, Tensor> update_in_place(const Tensor& keys, const Tensor& values);
  std::pair<Tensor, Tensor> update_concat(const Tensor& keys, const Tensor& values);
  Tensor temporal_order(const Tensor& v) const;
  Tensor trimmed(int64_t trim_size, const Tensor& v, const Tensor& append) const;

  int64_t max_size_, keep_, step_;
  int64_t offset_ = 0;
  int64_t idx_ = 0;       // next write slot in the ring
  int64_t returned_ = 0;  // keys returned by the last update
  Tensor keys_, values_;  // [batch, kv_heads, size, head_dim]
};

}  // namespace lmx::generate
