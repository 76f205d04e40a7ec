#include "lmx/generate/batch_kv_cache.h"

#include <algorithm>
#include <limits>

#include "lmx/base/error.h"
#include "lmx/generate/kv_buffer.h"
#include "lmx/generate/simple_kv_cache.h"

namespace lmx::generate {

BatchKVCache::BatchKVCache(std::vector<int64_t> left_padding, int64_t step)
    : pad_(std::move(left_padding)), step_(step) {
  for (int64_t p : pad_)
    if (p < 0) throw InvalidArgument("BatchKVCache: negative left padding");
}

std::pair<Tensor, Tensor> BatchKVCache::update_and_fetch(const Tensor& keys, const Tensor& values) {
  check_kv(keys, values, "BatchKVCache");
  if (keys.dim(0) != static_cast<int64_t>(pad_.size())) {
    throw ShapeError("BatchKVCache: batch " + std::to_string(keys.dim(0)) + " but " +
                     std::to_string(pad_.size()) + " paddings");
  }
  return append_kv(keys_, values_, offset_, keys, values, step_);
}

Tensor BatchKVCache::make_mask(int64_t q_len, int64_t window) const {
  const int64_t B = static_cast<int64_t>(pad_.size()), L = offset_;
  std::vector<float> m(static_cast<size_t>(B * q_len * L));
  const float neg_inf = -std::numeric_limits<float>::infinity();
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t i = 0; i < q_len; ++i) {
      const int64_t p = offset_ - q_len + i;
      for (int64_t j = 0; j < L; ++j) {
        const bool visible =
            j >= pad_[static_cast<size_t>(b)] && j <= p && (window <= 0 || p - j < window);
        m[static_cast<size_t>((b * q_len + i) * L + j)] = visible ? 0.0f : neg_inf;
      }
    }
  }
  return Tensor::from_vector(m, {B, 1, q_len, L});
}

int64_t BatchKVCache::trim(int64_t n) {
  const int64_t dropped = std::clamp<int64_t>(n, 0, offset_);
  offset_ -= dropped;
  return dropped;
}

std::vector<Tensor> BatchKVCache::state() const {
  if (!keys_.defined() || offset_ == 0) return {};
  return {keys_.slice(2, 0, offset_), values_.slice(2, 0, offset_)};
}

std::unique_ptr<nn::KVCache> BatchKVCache::copy() const {
  auto c = std::make_unique<BatchKVCache>(pad_, step_);
  c->offset_ = offset_;
  if (keys_.defined()) {
    c->keys_ = keys_.clone();
    c->values_ = values_.clone();
  }
  return c;
}

}  // namespace lmx::generate
