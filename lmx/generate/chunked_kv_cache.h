// mlx-lm's ChunkedKVCache (chunked local attention, Llama 4): a growing cache whose
// front is dropped so that at most `chunk_size` positions stay before each update.
// Keys returned start at first_position() (= start_position).
#pragma once

#include "lmx/nn/kv_cache.h"

namespace lmx::generate {

class ChunkedKVCache : public nn::KVCache {
 public:
  explicit ChunkedKVCache(int64_t chunk_size, int64_t step = 256);
  ChunkedKVCache(const Tensor& keys,
                 const Tensor& values,
                 int64_t chunk_size,
                 int64_t start_position,
                 int64_t step = 256);
  int64_t offset() const override { return offset_; }
  int64_t first_position() const override { return start_; }
  std::pair<Tensor, Tensor> update_and_fetch(const Tensor& keys, const Tensor& values) override;
  // Drops the front so that at most chunk_size positions stay (update_and_fetch calls
  // it first).
  void maybe_trim_front();
  bool is_trimmable() const override { return true; }
  int64_t trim(int64_t n) override;
  std::vector<Tensor> state() const override;
  std::vector<std::string> meta_state() const override {
    return {std::to_string(chunk_), std::to_string(start_)};
  }
  std::string class_name() const override { return "ChunkedKVCache"; }
  std::unique_ptr<nn::KVCache> copy() const override;
  std::unique_ptr<nn::KVCache> heads(int64_t begin, int64_t count) const override;

 private:
  int64_t chunk_, step_;
  int64_t offset_ = 0, start_ = 0;
  Tensor keys_, values_;  // [B, H, capacity, D]; slot s holds position start_ + s
};

}  // namespace lmx::generate
