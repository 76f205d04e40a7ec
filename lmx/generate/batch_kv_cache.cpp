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
  Tensor k = keys_.defined() ? used_keys() : Tensor(), v = values_.defined() ? used_values() : Tensor();
  auto out = append_kv(k, v, offset_, keys, values, step_);
  if (!keys_.defined() || k.dim(2) != keys_.dim(2)) {  // grown: new buffers of B rows
    keys_ = k;
    values_ = v;
  }
  return out;
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

// Fresh buffers of `rows` rows (rounded up to BatchKVCache::kRowStep) and `length`
// positions (rounded up to the step), not filled: the callers write every position below
// `length` of every row in use (the rest is written by update_and_fetch before anything
// reads it; rows not in use are written when rows join).
Tensor unfilled_like(const Tensor& like, int64_t rows, int64_t length, int64_t step) {
  const int64_t capacity = std::max<int64_t>(step, (length + step - 1) / step * step);
  const int64_t row_capacity = (rows + BatchKVCache::kRowStep - 1) / BatchKVCache::kRowStep * BatchKVCache::kRowStep;
  return Tensor::empty({row_capacity, like.dim(1), capacity, like.dim(3)}, kv_storage_dtype(like), like.device());
}

void zero(Tensor region) {
  if (region.numel() > 0) region.copy_(Tensor::zeros(region.shape(), region.dtype(), region.device()));
}

}  // namespace

void BatchKVCache::add_row(const Tensor& keys, const Tensor& values) { add_rows({{keys, values}}); }

void BatchKVCache::add_rows(const std::vector<std::pair<Tensor, Tensor>>& added) {
  const Tensor* like_k = keys_.defined() ? &keys_ : nullptr;
  const Tensor* like_v = values_.defined() ? &values_ : nullptr;
  int64_t longest = 0;
  for (const auto& [keys, values] : added) {
    if (!keys.defined()) continue;
    check_kv(keys, values, "BatchKVCache::add_row");
    if (keys.dim(0) != 1) throw ShapeError("BatchKVCache::add_row: a row of batch " + std::to_string(keys.dim(0)));
    if (like_k && (keys.dim(1) != like_k->dim(1) || keys.dim(3) != like_k->dim(3)))
      throw ShapeError("BatchKVCache::add_row: heads / head_dim differ from the batch's");
    if (!like_k) {
      like_k = &keys;
      like_v = &values;
    }
    longest = std::max(longest, keys.dim(2));
  }
  const int64_t B = rows(), A = static_cast<int64_t>(added.size());
  const int64_t shift = std::max<int64_t>(0, longest - offset_);  // the batch moves right by this
  const int64_t length = offset_ + shift;
  if (like_k) {
    // Into the free rows of the buffers when the batch does not move and they fit; else one
    // new buffer for all the rows (a copy of the whole batch).
    const bool in_place = keys_.defined() && shift == 0 && B + A <= keys_.dim(0) && length <= keys_.dim(2);
    Tensor k = in_place ? keys_ : unfilled_like(*like_k, B + A, length, step_);
    Tensor v = in_place ? values_ : unfilled_like(*like_v, B + A, length, step_);
    if (B > 0 && !in_place) {
      const int64_t kept = keys_.defined() ? offset_ : 0;
      zero(k.slice(0, 0, B).slice(2, 0, length - kept));
      zero(v.slice(0, 0, B).slice(2, 0, length - kept));
      if (kept > 0) {
        k.slice(0, 0, B).slice(2, length - kept, length).copy_(used_keys().slice(2, 0, kept));
        v.slice(0, 0, B).slice(2, length - kept, length).copy_(used_values().slice(2, 0, kept));
      }
    }
    for (int64_t i = 0; i < A; ++i) {
      const auto& [keys, values] = added[static_cast<size_t>(i)];
      const int64_t n = keys.defined() ? keys.dim(2) : 0;
      zero(k.slice(0, B + i, B + i + 1).slice(2, 0, length - n));
      zero(v.slice(0, B + i, B + i + 1).slice(2, 0, length - n));
      if (n > 0) {
        k.slice(0, B + i, B + i + 1).slice(2, length - n, length).copy_(keys);
        v.slice(0, B + i, B + i + 1).slice(2, length - n, length).copy_(values);
      }
    }
    keys_ = k;
    values_ = v;
  }
  for (int64_t& p : pad_) p += shift;
  for (const auto& [keys, values] : added) pad_.push_back(length - (keys.defined() ? keys.dim(2) : 0));
  offset_ = length;
}

void BatchKVCache::remove_row(int64_t b) { remove_rows({b}); }

void BatchKVCache::remove_rows(const std::vector<int64_t>& gone) {
  const int64_t B = rows();
  for (size_t i = 0; i < gone.size(); ++i) {
    if (gone[i] < 0 || gone[i] >= B) throw InvalidArgument("BatchKVCache::remove_row: no row " + std::to_string(gone[i]));
    if (i > 0 && gone[i] <= gone[i - 1]) throw InvalidArgument("BatchKVCache::remove_rows: rows not ascending");
  }
  std::vector<int64_t> pads;
  for (int64_t b = 0, g = 0; b < B; ++b) {
    if (g < static_cast<int64_t>(gone.size()) && gone[static_cast<size_t>(g)] == b) {
      ++g;
    } else {
      pads.push_back(pad_[static_cast<size_t>(b)]);
    }
  }
  pad_ = std::move(pads);
  if (pad_.empty()) {  // nothing left: the buffers go
    keys_ = {};
    values_ = {};
    offset_ = 0;
    return;
  }
  const int64_t dead = std::min(*std::min_element(pad_.begin(), pad_.end()), offset_);
  if (keys_.defined() && 2 * dead < offset_) {
    // In place: each later row moves up into the first free row (rows are disjoint
    // blocks of the buffers), the positions no row sees stay (masked).
    int64_t dest = 0;
    for (int64_t b = 0, g = 0; b < B; ++b) {
      if (g < static_cast<int64_t>(gone.size()) && gone[static_cast<size_t>(g)] == b) {
        ++g;
        continue;
      }
      if (dest != b && offset_ > 0) {
        keys_.slice(0, dest, dest + 1).slice(2, 0, offset_).copy_(keys_.slice(0, b, b + 1).slice(2, 0, offset_));
        values_.slice(0, dest, dest + 1).slice(2, 0, offset_).copy_(values_.slice(0, b, b + 1).slice(2, 0, offset_));
      }
      ++dest;
    }
    return;
  }
  const int64_t drop = dead;
  const int64_t length = offset_ - drop;
  if (keys_.defined()) {
    Tensor k = unfilled_like(keys_, rows(), length, step_), v = unfilled_like(values_, rows(), length, step_);
    // The runs of kept rows between the removed ones, each in one copy.
    int64_t dest = 0;
    auto move_rows = [&](int64_t from, int64_t to) {
      if (to <= from) return;
      if (length > 0) {
        k.slice(0, dest, dest + to - from).slice(2, 0, length).copy_(keys_.slice(0, from, to).slice(2, drop, offset_));
        v.slice(0, dest, dest + to - from).slice(2, 0, length).copy_(values_.slice(0, from, to).slice(2, drop, offset_));
      }
      dest += to - from;
    };
    int64_t from = 0;
    for (int64_t g : gone) {
      move_rows(from, g);
      from = g + 1;
    }
    move_rows(from, B);
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
  return {used_keys().slice(2, 0, offset_), used_values().slice(2, 0, offset_)};
}

std::unique_ptr<nn::KVCache> BatchKVCache::copy() const { return heads(0, keys_.defined() ? keys_.dim(1) : 0); }

std::unique_ptr<nn::KVCache> BatchKVCache::heads(int64_t begin, int64_t count) const {
  auto c = std::make_unique<BatchKVCache>(pad_, step_);
  c->offset_ = offset_;
  if (keys_.defined()) {
    c->keys_ = nn::clone_heads(used_keys(), begin, count);
    c->values_ = nn::clone_heads(used_values(), begin, count);
  }
  return c;
}

nn::KVCacheList batch_row_caches(const models::LanguageModel& model, int64_t step) {
  nn::KVCacheList caches;
  for (int64_t i = 0; i < model.num_layers(); ++i) {
    std::unique_ptr<nn::KVCache> own = model.make_layer_cache(i);
    caches.push_back(own ? std::move(own) : std::make_unique<SimpleKVCache>(step));
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
    // A BatchKVCache, or a split model's (tensor_parallel_model.h) of one on every rank.
    const std::vector<Tensor> kv = row[i]->state();
    if (kv.empty()) {
      batch[i]->add_rows(std::vector<std::pair<Tensor, Tensor>>(1));
    } else {
      batch[i]->add_rows({{kv[0], kv[1]}});
    }
  }
}

void join_batch_rows(nn::KVCacheList& batch, const std::vector<std::vector<std::vector<Tensor>>>& rows,
                     int64_t step) {
  if (rows.empty()) return;
  const size_t layers = rows[0].size();
  if (batch.empty())
    for (size_t i = 0; i < layers; ++i) batch.push_back(std::make_unique<BatchKVCache>(std::vector<int64_t>{}, step));
  for (const auto& row : rows)
    if (row.size() != batch.size())
      throw InvalidArgument("batch cache: a row of " + std::to_string(row.size()) + " layers joins a batch of " +
                            std::to_string(batch.size()));
  for (size_t i = 0; i < batch.size(); ++i) {
    std::vector<std::pair<Tensor, Tensor>> added;
    for (const auto& row : rows) {
      if (row[i].empty()) {
        added.emplace_back();
      } else {
        added.emplace_back(row[i].at(0), row[i].at(1));
      }
    }
    batch[i]->add_rows(added);
  }
}

}  // namespace lmx::generate
