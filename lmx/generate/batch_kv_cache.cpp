#include "lmx/generate/batch_kv_cache.h"

#include <algorithm>
#include <limits>

#include "lmx/base/error.h"
#include "lmx/generate/kv_buffer.h"
#include "lmx/generate/simple_kv_cache.h"
#include "lmx/nn/state_cache.h"

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

namespace {

// Fresh zeroed buffers of `rows` rows and `length` positions (rounded up to the step).
Tensor zeroed_like(const Tensor& like, int64_t rows, int64_t length, int64_t step) {
  const int64_t capacity = std::max<int64_t>(step, (length + step - 1) / step * step);
  return Tensor::zeros({rows, like.dim(1), capacity, like.dim(3)}, Dtype::f32, like.device());
}

}  // namespace

void BatchKVCache::add_row(const Tensor& keys, const Tensor& values) {
  const int64_t n = keys.defined() ? keys.dim(2) : 0;
  if (keys.defined()) {
    check_kv(keys, values, "BatchKVCache::add_row");
    if (keys.dim(0) != 1) throw ShapeError("BatchKVCache::add_row: a row of batch " + std::to_string(keys.dim(0)));
    if (keys_.defined() && (keys.dim(1) != keys_.dim(1) || keys.dim(3) != keys_.dim(3)))
      throw ShapeError("BatchKVCache::add_row: heads / head_dim differ from the batch's");
  }
  const int64_t B = rows();
  const int64_t shift = std::max<int64_t>(0, n - offset_);  // the batch moves right by this
  const int64_t length = offset_ + shift;
  const Tensor& like = keys_.defined() ? keys_ : keys;
  if (like.defined()) {
    Tensor k = zeroed_like(like, B + 1, length, step_), v = zeroed_like(values_.defined() ? values_ : values, B + 1, length, step_);
    if (B > 0 && keys_.defined() && offset_ > 0) {
      k.slice(0, 0, B).slice(2, shift, length).copy_(keys_.slice(2, 0, offset_));
      v.slice(0, 0, B).slice(2, shift, length).copy_(values_.slice(2, 0, offset_));
    }
    if (n > 0) {
      k.slice(0, B, B + 1).slice(2, length - n, length).copy_(keys);
      v.slice(0, B, B + 1).slice(2, length - n, length).copy_(values);
    }
    keys_ = k;
    values_ = v;
  }
  for (int64_t& p : pad_) p += shift;
  pad_.push_back(length - n);
  offset_ = length;
}

void BatchKVCache::remove_row(int64_t b) {
  if (b < 0 || b >= rows()) throw InvalidArgument("BatchKVCache::remove_row: no row " + std::to_string(b));
  pad_.erase(pad_.begin() + b);
  if (pad_.empty()) {  // nothing left: the buffers go
    keys_ = {};
    values_ = {};
    offset_ = 0;
    return;
  }
  const int64_t drop = std::min(*std::min_element(pad_.begin(), pad_.end()), offset_);
  const int64_t length = offset_ - drop;
  if (keys_.defined()) {
    const int64_t B = rows() + 1;
    Tensor k = zeroed_like(keys_, B - 1, length, step_), v = zeroed_like(values_, B - 1, length, step_);
    auto move_rows = [&](int64_t from, int64_t to, int64_t dest) {
      if (to <= from || length == 0) return;
      k.slice(0, dest, dest + to - from).slice(2, 0, length).copy_(keys_.slice(0, from, to).slice(2, drop, offset_));
      v.slice(0, dest, dest + to - from).slice(2, 0, length).copy_(values_.slice(0, from, to).slice(2, drop, offset_));
    };
    move_rows(0, b, 0);
    move_rows(b + 1, B, b);
    keys_ = k;
    values_ = v;
  }
  for (int64_t& p : pad_) p -= drop;
  offset_ = length;
}

std::vector<Tensor> BatchKVCache::row_state(int64_t b) const {
  if (b < 0 || b >= rows()) throw InvalidArgument("BatchKVCache::row_state: no row " + std::to_string(b));
  const int64_t first = pad_[static_cast<size_t>(b)];
  if (!keys_.defined() || first >= offset_) return {};
  return {keys_.slice(0, b, b + 1).slice(2, first, offset_), values_.slice(0, b, b + 1).slice(2, first, offset_)};
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

nn::KVCacheList batch_row_caches(const models::LanguageModel& model) {
  nn::KVCacheList caches;
  for (int64_t i = 0; i < model.num_layers(); ++i) {
    std::unique_ptr<nn::KVCache> own = model.make_layer_cache(i);
    caches.push_back(own ? std::move(own) : std::make_unique<SimpleKVCache>());
  }
  return caches;
}

void join_batch_row(nn::KVCacheList& batch, const nn::KVCacheList& row) {
  if (batch.empty()) {
    for (const auto& c : row) {
      if (dynamic_cast<const nn::StateCache*>(c.get())) {
        batch.push_back(std::make_unique<nn::StateCache>(0));
      } else {
        batch.push_back(std::make_unique<BatchKVCache>(std::vector<int64_t>{}));
      }
    }
  }
  if (batch.size() != row.size()) {
    throw InvalidArgument("batch cache: a row of " + std::to_string(row.size()) + " layer caches joins a batch of " +
                          std::to_string(batch.size()));
  }
  for (size_t i = 0; i < batch.size(); ++i) {
    if (auto* state = dynamic_cast<nn::StateCache*>(batch[i].get())) {
      const auto* own = dynamic_cast<const nn::StateCache*>(row[i].get());
      if (!own) throw InvalidArgument("batch cache: layer " + std::to_string(i) + " of the row is not a state cache");
      state->append_rows(*own);
      continue;
    }
    auto* keys = dynamic_cast<BatchKVCache*>(batch[i].get());
    if (!keys) throw InvalidArgument("batch cache: layer " + std::to_string(i) + " is a " + batch[i]->class_name());
    const std::vector<Tensor> kv = row[i]->state();
    if (kv.empty()) {
      keys->add_row({}, {});
    } else {
      keys->add_row(kv[0], kv[1]);
    }
  }
}

}  // namespace lmx::generate
