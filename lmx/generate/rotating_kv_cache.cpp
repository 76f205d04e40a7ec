#include "lmx/generate/rotating_kv_cache.h"

#include <algorithm>
#include <limits>

#include "lmx/base/error.h"
#include "lmx/core/ops/shape.h"
#include "lmx/generate/simple_kv_cache.h"

namespace lmx::generate {
namespace {

Tensor cat2(const std::vector<Tensor>& parts) {
  std::vector<Tensor> nonempty;
  for (const auto& p : parts)
    if (p.defined() && p.dim(2) > 0) nonempty.push_back(p);
  if (nonempty.size() == 1) return nonempty[0].contiguous();
  return ops::concat(nonempty, 2);
}

}  // namespace

RotatingKVCache::RotatingKVCache(int64_t max_size, int64_t keep, int64_t step)
    : max_size_(max_size), keep_(keep), step_(step) {
  if (max_size <= 0 || keep < 0 || keep >= max_size || step <= 0) {
    throw InvalidArgument("RotatingKVCache: max_size " + std::to_string(max_size) +
                          " must be positive and keep " + std::to_string(keep) +
                          " in [0, max_size)");
  }
}

RotatingKVCache::RotatingKVCache(const Tensor& keys,
                                 const Tensor& values,
                                 int64_t max_size,
                                 int64_t keep,
                                 int64_t offset,
                                 int64_t idx,
                                 int64_t step)
    : RotatingKVCache(max_size, keep, step) {
  check_kv(keys, values, "RotatingKVCache state");
  const int64_t size = keys.dim(2);
  if (idx < 0 || idx > size || size > offset) {
    throw FormatError("RotatingKVCache state: offset " + std::to_string(offset) + ", index " +
                      std::to_string(idx) + " do not fit " + std::to_string(size) +
                      " stored positions (max_size " + std::to_string(max_size) + ")");
  }
  keys_ = keys.to(Dtype::f32).clone();
  values_ = values.to(Dtype::f32).clone();
  offset_ = offset;
  idx_ = idx;
  returned_ = std::min(offset, size);
}

std::vector<std::string> RotatingKVCache::meta_state() const {
  return {std::to_string(keep_), std::to_string(max_size_), std::to_string(offset_),
          std::to_string(idx_)};
}

Tensor RotatingKVCache::temporal_order(const Tensor& v) const {
  const int64_t size = v.dim(2);
  if (idx_ == size) return v;
  if (idx_ < offset_)
    return cat2({v.slice(2, 0, keep_), v.slice(2, idx_, size), v.slice(2, keep_, idx_)});
  return v.slice(2, 0, idx_);
}

Tensor RotatingKVCache::trimmed(int64_t trim_size, const Tensor& v, const Tensor& append) const {
  if (trim_size > 0)
    return cat2({v.slice(2, 0, keep_), v.slice(2, trim_size + keep_, v.dim(2)), append});
  return cat2({v, append});
}

std::pair<Tensor, Tensor> RotatingKVCache::update_concat(const Tensor& keys, const Tensor& values) {
  if (!keys_.defined()) {
    keys_ = keys.to(Dtype::f32).contiguous().clone();
    values_ = values.to(Dtype::f32).contiguous().clone();
  } else {
    Tensor k = temporal_order(keys_), v = temporal_order(values_);
    idx_ = k.dim(2);
    // Keep the latest max_size - 1 positions so that the first new query still sees
    // max_size keys (itself included).
    const int64_t trim_size = idx_ - max_size_ + 1;
    keys_ = trimmed(trim_size, k, keys.to(Dtype::f32));
    values_ = trimmed(trim_size, v, values.to(Dtype::f32));
  }
  offset_ += keys.dim(2);
  idx_ = keys_.dim(2);
  returned_ = idx_;
  return {keys_, values_};
}

std::pair<Tensor, Tensor> RotatingKVCache::update_in_place(const Tensor& keys,
                                                           const Tensor& values) {
  const int64_t B = keys.dim(0), H = keys.dim(1), S = keys.dim(2);
  const int64_t prev = offset_;
  if (!keys_.defined() || (prev >= keys_.dim(2) && keys_.dim(2) < max_size_)) {
    const int64_t grow = std::min(step_, max_size_ - prev);
    Tensor k = Tensor::zeros({B, H, grow, keys.dim(3)}, Dtype::f32, keys.device());
    Tensor v = Tensor::zeros({B, H, grow, values.dim(3)}, Dtype::f32, values.device());
    if (keys_.defined()) {
      keys_ = cat2({keys_, k});
      values_ = cat2({values_, v});
    } else {
      keys_ = k;
      values_ = v;
    }
    idx_ = prev;
  }
  const int64_t trim_size = keys_.dim(2) - max_size_;
  if (trim_size > 0) {
    // After a long update the buffer is larger than the ring: drop the oldest.
    keys_ = trimmed(trim_size, keys_, {});
    values_ = trimmed(trim_size, values_, {});
    idx_ = max_size_;
  }
  if (idx_ == max_size_) idx_ = keep_;
  keys_.slice(2, idx_, idx_ + S).copy_(keys);
  values_.slice(2, idx_, idx_ + S).copy_(values);
  offset_ += S;
  idx_ += S;
  if (offset_ < max_size_) {
    returned_ = offset_;
    return {keys_.slice(2, 0, offset_), values_.slice(2, 0, offset_)};
  }
  returned_ = keys_.dim(2);
  return {keys_, values_};
}

std::pair<Tensor, Tensor> RotatingKVCache::update_and_fetch(const Tensor& keys,
                                                            const Tensor& values) {
  check_kv(keys, values, "RotatingKVCache");
  if (keys_.defined() && (keys_.dim(0) != keys.dim(0) || keys_.dim(1) != keys.dim(1) ||
                          keys_.dim(3) != keys.dim(3) || values_.dim(3) != values.dim(3))) {
    throw ShapeError("RotatingKVCache: new keys " + shape_str(keys.shape()) +
                     " do not match the cached " + shape_str(keys_.shape()));
  }
  if (keys.dim(2) == 1) return update_in_place(keys, values);
  return update_concat(keys, values);
}

std::vector<int64_t> RotatingKVCache::key_positions() const {
  // Slot order in time, then positions: the first `keep` slots (once written) hold
  // positions 0..keep-1; the remaining slots in temporal order end at offset - 1.
  const int64_t size = returned_;
  std::vector<int64_t> order;
  order.reserve(static_cast<size_t>(size));
  if (idx_ == size || idx_ >= offset_) {
    for (int64_t s = 0; s < size; ++s) order.push_back(s);
  } else {
    for (int64_t s = 0; s < keep_; ++s) order.push_back(s);
    for (int64_t s = idx_; s < size; ++s) order.push_back(s);
    for (int64_t s = keep_; s < idx_; ++s) order.push_back(s);
  }
  std::vector<int64_t> pos(static_cast<size_t>(size), -1);
  const int64_t n = static_cast<int64_t>(order.size());
  const int64_t kept = std::min(keep_, n);
  for (int64_t t = 0; t < n; ++t) {
    const int64_t p = t < kept ? t : offset_ - (n - t);
    pos[static_cast<size_t>(order[static_cast<size_t>(t)])] = p;
  }
  return pos;
}

Tensor RotatingKVCache::make_mask(int64_t q_len, int64_t window) const {
  // Nothing evicted yet and the keys in order from position 0: plain causal + window.
  if (returned_ == offset_ && idx_ == returned_ && offset_ <= max_size_) return {};
  const std::vector<int64_t> pos = key_positions();
  const int64_t L = static_cast<int64_t>(pos.size());
  std::vector<float> m(static_cast<size_t>(q_len * L));
  const float neg_inf = -std::numeric_limits<float>::infinity();
  for (int64_t i = 0; i < q_len; ++i) {
    const int64_t p = offset_ - q_len + i;
    for (int64_t j = 0; j < L; ++j) {
      const int64_t kp = pos[static_cast<size_t>(j)];
      const bool visible = kp >= 0 && kp <= p && (kp < keep_ || p - kp < max_size_ - keep_) &&
                           (window <= 0 || p - kp < window);
      m[static_cast<size_t>(i * L + j)] = visible ? 0.0f : neg_inf;
    }
  }
  return Tensor::from_vector(m, {q_len, L});
}

int64_t RotatingKVCache::trim(int64_t n) {
  const int64_t dropped = std::clamp<int64_t>(n, 0, offset_);
  offset_ -= dropped;
  idx_ -= dropped;
  returned_ = std::min(returned_, offset_);
  return dropped;
}

std::vector<Tensor> RotatingKVCache::state() const {
  if (!keys_.defined()) return {};
  if (offset_ < keys_.dim(2)) return {keys_.slice(2, 0, offset_), values_.slice(2, 0, offset_)};
  return {keys_, values_};
}

std::unique_ptr<nn::KVCache> RotatingKVCache::copy() const { return heads(0, keys_.defined() ? keys_.dim(1) : 0); }

std::unique_ptr<nn::KVCache> RotatingKVCache::heads(int64_t begin, int64_t count) const {
  auto c = std::make_unique<RotatingKVCache>(max_size_, keep_, step_);
  c->offset_ = offset_;
  c->idx_ = idx_;
  c->returned_ = returned_;
  c->keys_ = nn::clone_heads(keys_, begin, count);
  c->values_ = nn::clone_heads(values_, begin, count);
  return c;
}

}  // namespace lmx::generate
