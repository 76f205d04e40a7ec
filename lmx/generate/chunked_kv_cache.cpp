#include "lmx/generate/chunked_kv_cache.h"

#include <algorithm>

#include "lmx/base/error.h"
#include "lmx/generate/kv_buffer.h"
#include "lmx/generate/simple_kv_cache.h"

namespace lmx::generate {

ChunkedKVCache::ChunkedKVCache(int64_t chunk_size, int64_t step) : chunk_(chunk_size), step_(step) {
  if (chunk_size <= 0) throw InvalidArgument("ChunkedKVCache: chunk size must be positive");
}

ChunkedKVCache::ChunkedKVCache(const Tensor& keys,
                               const Tensor& values,
                               int64_t chunk_size,
                               int64_t start_position,
                               int64_t step)
    : ChunkedKVCache(chunk_size, step) {
  check_kv(keys, values, "ChunkedKVCache state");
  keys_ = keys.to(Dtype::f32).clone();
  values_ = values.to(Dtype::f32).clone();
  start_ = start_position;
  offset_ = start_position + keys.dim(2);
}

void ChunkedKVCache::maybe_trim_front() {
  const int64_t held = offset_ - start_;
  if (!keys_.defined() || held < chunk_) return;
  const int64_t drop = held - chunk_;
  keys_ = keys_.slice(2, drop, held).clone();
  values_ = values_.slice(2, drop, held).clone();
  start_ += drop;
}

std::pair<Tensor, Tensor> ChunkedKVCache::update_and_fetch(const Tensor& keys,
                                                           const Tensor& values) {
  check_kv(keys, values, "ChunkedKVCache");
  maybe_trim_front();
  const int64_t n = keys.dim(2);
  int64_t held = offset_ - start_;  // positions in the buffers (the chunk kept so far)
  auto kv = append_kv(keys_, values_, held, keys, values, step_);
  offset_ += n;
  return kv;
}

int64_t ChunkedKVCache::trim(int64_t n) {
  const int64_t dropped = std::clamp<int64_t>(n, 0, offset_ - start_);
  offset_ -= dropped;
  return dropped;
}

std::vector<Tensor> ChunkedKVCache::state() const {
  if (!keys_.defined() || offset_ == start_) return {};
  return {keys_.slice(2, 0, offset_ - start_), values_.slice(2, 0, offset_ - start_)};
}

std::unique_ptr<nn::KVCache> ChunkedKVCache::copy() const { return heads(0, keys_.defined() ? keys_.dim(1) : 0); }

std::unique_ptr<nn::KVCache> ChunkedKVCache::heads(int64_t begin, int64_t count) const {
  auto c = std::make_unique<ChunkedKVCache>(chunk_, step_);
  c->offset_ = offset_;
  c->start_ = start_;
  c->keys_ = nn::clone_heads(keys_, begin, count);
  c->values_ = nn::clone_heads(values_, begin, count);
  return c;
}

}  // namespace lmx::generate
