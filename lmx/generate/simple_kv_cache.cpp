#include "lmx/generate/simple_kv_cache.h"

#include <algorithm>

#include "lmx/base/error.h"
#include "lmx/generate/kv_buffer.h"
#include "lmx/generate/quantized_kv_cache.h"

namespace lmx::generate {

void check_kv(const Tensor& keys, const Tensor& values, const char* cache) {
  if (keys.ndim() != 4 || values.ndim() != 4 || keys.dim(0) != values.dim(0) || keys.dim(1) != values.dim(1) ||
      keys.dim(2) != values.dim(2)) {
    throw ShapeError(std::string(cache) + ": keys " + shape_str(keys.shape()) + " and values " +
                     shape_str(values.shape()) + " must be [batch, heads, tokens, dim] with equal batch, heads, tokens");
  }
}

SimpleKVCache::SimpleKVCache(const Tensor& keys, const Tensor& values, int64_t step) : step_(step) {
  check_kv(keys, values, "KVCache state");
  keys_ = keys.to(Dtype::f32).clone();
  values_ = values.to(Dtype::f32).clone();
  offset_ = keys.dim(2);
}

namespace {

void check_fits(const Tensor& cached, const Tensor& cached_values, const Tensor& keys, const Tensor& values) {
  check_kv(keys, values, "kv cache");
  if (cached.defined() && (cached.dim(0) != keys.dim(0) || cached.dim(1) != keys.dim(1) ||
                           cached.dim(3) != keys.dim(3) || cached_values.dim(3) != values.dim(3))) {
    throw ShapeError("kv cache: new keys " + shape_str(keys.shape()) + " do not match the cached " +
                     shape_str(cached.shape()));
  }
}

}  // namespace

std::pair<Tensor, Tensor> SimpleKVCache::update_and_fetch(const Tensor& keys, const Tensor& values) {
  check_fits(keys_, values_, keys, values);
  return append_kv(keys_, values_, offset_, keys, values, step_);
}

std::pair<Tensor, Tensor> SimpleKVCache::reserve(const Tensor& keys, const Tensor& values) {
  check_fits(keys_, values_, keys, values);
  reserve_kv(keys_, values_, offset_, keys, values, step_);
  return {keys_, values_};
}

std::pair<Tensor, Tensor> SimpleKVCache::commit(int64_t n) {
  if (!keys_.defined() || n < 0 || offset_ + n > keys_.dim(2)) {
    throw InternalError("kv cache: commit of " + std::to_string(n) + " tokens past the reserved buffers");
  }
  offset_ += n;
  return {keys_.slice(2, 0, offset_), values_.slice(2, 0, offset_)};
}

int64_t SimpleKVCache::trim(int64_t n) {
  const int64_t dropped = std::clamp<int64_t>(n, 0, offset_);
  offset_ -= dropped;
  return dropped;
}

std::vector<Tensor> SimpleKVCache::state() const {
  if (!keys_.defined() || offset_ == 0) return {};
  return {keys_.slice(2, 0, offset_), values_.slice(2, 0, offset_)};
}

std::unique_ptr<nn::KVCache> SimpleKVCache::copy() const { return heads(0, keys_.defined() ? keys_.dim(1) : 0); }

std::unique_ptr<nn::KVCache> SimpleKVCache::heads(int64_t begin, int64_t count) const {
  auto c = std::make_unique<SimpleKVCache>(step_);
  c->offset_ = offset_;
  c->keys_ = nn::clone_heads(keys_, begin, count);
  c->values_ = nn::clone_heads(values_, begin, count);
  return c;
}

std::unique_ptr<QuantizedKVCache> SimpleKVCache::to_quantized(int group_size, int bits, int v_bits) const {
  auto q = std::make_unique<QuantizedKVCache>(group_size, bits, v_bits);
  if (offset_ > 0) q->update_and_fetch_quantized(keys_.slice(2, 0, offset_), values_.slice(2, 0, offset_));
  return q;
}

}  // namespace lmx::generate
