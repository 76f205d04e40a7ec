#include "lmx/nn/state_cache.h"

#include <algorithm>

#include "lmx/core/ops/shape.h"
#include "lmx/nn/ssm/recurrent_mixer.h"

namespace lmx::nn {

StateCache::StateCache(const std::vector<Tensor>& arrays, int64_t offset) : offset_(offset) {
  for (const Tensor& a : arrays) {
    if (!a.defined() || !is_floating(a.dtype())) {
      throw InvalidArgument("state cache: saved arrays must be floating tensors");
    }
    // Layers update the state in place: never alias the caller's (or a file's) memory.
    arrays_.push_back(a.to(Dtype::f32).clone());
  }
}

void StateCache::expect_arrays(size_t n, const char* layer) {
  if (arrays_.empty() && offset_ == 0) arrays_.resize(n);
  if (arrays_.size() != n) {
    throw InvalidArgument(std::string(layer) + ": the layer's state cache holds " + std::to_string(arrays_.size()) +
                          " arrays, expected " + std::to_string(n));
  }
}

const Tensor& StateCache::get(size_t i) const {
  if (i >= arrays_.size()) {
    throw InvalidArgument("state cache: array " + std::to_string(i) + " of " + std::to_string(arrays_.size()));
  }
  return arrays_[i];
}

void StateCache::set(size_t i, Tensor value) {
  if (i >= arrays_.size()) {
    throw InvalidArgument("state cache: array " + std::to_string(i) + " of " + std::to_string(arrays_.size()));
  }
  arrays_[i] = std::move(value);
}

void StateCache::append_rows(const StateCache& other) {
  if (arrays_.empty()) arrays_.resize(other.arrays_.size());
  if (other.arrays_.size() != arrays_.size()) {
    throw InvalidArgument("state cache: cannot batch a cache of " + std::to_string(other.arrays_.size()) +
                          " arrays with one of " + std::to_string(arrays_.size()));
  }
  for (size_t i = 0; i < arrays_.size(); ++i) {
    if (!other.arrays_[i].defined()) throw InvalidArgument("state cache: a row to batch has not seen any token");
    arrays_[i] = arrays_[i].defined() ? ops::concat({arrays_[i], other.arrays_[i]}, 0) : other.arrays_[i].clone();
  }
  offset_ = std::max(offset_, other.offset_);
}

void StateCache::remove_row(int64_t r) {
  for (Tensor& a : arrays_) {
    if (!a.defined()) continue;
    const int64_t n = a.dim(0);
    if (r < 0 || r >= n) throw InvalidArgument("state cache: row " + std::to_string(r) + " of " + std::to_string(n));
    if (n == 1) {
      a = Tensor();
    } else if (r == 0 || r == n - 1) {
      a = (r == 0 ? a.slice(0, 1, n) : a.slice(0, 0, n - 1)).contiguous();
    } else {
      a = ops::concat({a.slice(0, 0, r), a.slice(0, r + 1, n)}, 0);
    }
  }
}

std::pair<Tensor, Tensor> StateCache::update_and_fetch(const Tensor& keys, const Tensor& values) {
  (void)keys;
  (void)values;
  throw Unsupported("state cache: a recurrent layer's cache holds no keys and values");
}

std::vector<Tensor> StateCache::state() const {
  for (const Tensor& a : arrays_)
    if (!a.defined()) return {};
  return arrays_;
}

std::unique_ptr<KVCache> StateCache::copy() const {
  auto c = std::make_unique<StateCache>(arrays_.size());
  c->offset_ = offset_;
  for (size_t i = 0; i < arrays_.size(); ++i)
    if (arrays_[i].defined()) c->arrays_[i] = arrays_[i].clone();
  return c;
}

StateCache* as_state_cache(KVCache* cache, const char* layer) {
  if (!cache) return nullptr;
  auto* s = dynamic_cast<StateCache*>(cache);
  if (!s) {
    throw InvalidArgument(std::string(layer) + ": the layer's cache is a " + cache->class_name() +
                          ", not a state cache (make the caches with the model's make_layer_cache)");
  }
  return s;
}

}  // namespace lmx::nn
