#include "lmx/models/tensor_parallel_cache.h"

#include <algorithm>

#include "lmx/base/error.h"
#include "lmx/core/ops/shape.h"

namespace lmx::models {

TensorParallelCache::TensorParallelCache(const nn::KVCache& whole, std::vector<RankHeads> heads)
    : heads_(std::move(heads)) {
  if (heads_.empty()) throw InvalidArgument("tensor parallel: a cache split over no ranks");
  const std::vector<Tensor> st = whole.state();
  if (!st.empty()) check_whole(st.front(), whole.class_name().c_str());
  for (const RankHeads& h : heads_) ranks_.push_back(whole.heads(h.first, h.count));
}

int64_t TensorParallelCache::whole_heads() const {
  int64_t n = 0;
  for (const RankHeads& h : heads_) n = std::max(n, h.first + h.count);
  return n;
}

void TensorParallelCache::check_whole(const Tensor& t, const char* what) const {
  if (t.ndim() < 2 || t.dim(1) != whole_heads()) {
    throw ShapeError("tensor parallel: " + std::string(what) + " of " + shape_str(t.shape()) +
                     " for a layer of " + std::to_string(whole_heads()) + " kv heads (a cache of another model?)");
  }
}

std::vector<Tensor> TensorParallelCache::join(const std::vector<std::vector<Tensor>>& per_rank) const {
  if (per_rank.size() == 1 || per_rank.front().empty()) return per_rank.front();
  std::vector<Tensor> out;
  for (size_t j = 0; j < per_rank.front().size(); ++j) {
    std::vector<Tensor> parts;
    int64_t next = 0;  // the first head not yet taken; the ranks hold them in order
    for (size_t r = 0; r < per_rank.size(); ++r) {
      const RankHeads& h = heads_[r];
      if (h.first + h.count <= next) continue;  // a kv head an earlier rank holds too
      parts.push_back(per_rank[r].at(j).slice(1, next - h.first, h.count));
      next = h.first + h.count;
    }
    out.push_back(parts.size() == 1 ? parts.front() : ops::concat(parts, 1));
  }
  return out;
}

std::pair<Tensor, Tensor> TensorParallelCache::update_and_fetch(const Tensor& keys, const Tensor& values) {
  (void)keys;
  (void)values;
  throw Unsupported("TensorParallelCache: each rank's attention uses its own cache");
}

bool TensorParallelCache::is_trimmable() const {
  return std::all_of(ranks_.begin(), ranks_.end(), [](const auto& c) { return c->is_trimmable(); });
}

int64_t TensorParallelCache::trim(int64_t n) {
  int64_t dropped = 0;
  for (auto& c : ranks_) dropped = c->trim(n);
  return dropped;
}

std::vector<Tensor> TensorParallelCache::state() const {
  std::vector<std::vector<Tensor>> per_rank;
  for (const auto& c : ranks_) per_rank.push_back(c->state());
  return join(per_rank);
}

std::vector<Tensor> TensorParallelCache::buffers() const {
  std::vector<Tensor> out;
  for (const auto& c : ranks_) {
    for (Tensor& t : c->buffers()) out.push_back(std::move(t));
  }
  return out;
}

std::unique_ptr<nn::KVCache> TensorParallelCache::copy() const {
  std::vector<std::unique_ptr<nn::KVCache>> ranks;
  for (const auto& c : ranks_) ranks.push_back(c->copy());
  return std::unique_ptr<TensorParallelCache>(new TensorParallelCache(std::move(ranks), heads_));
}

void TensorParallelCache::add_rows(const std::vector<std::pair<Tensor, Tensor>>& rows) {
  for (const auto& [keys, values] : rows) {
    if (keys.defined()) check_whole(keys, "a row's keys");
    if (values.defined()) check_whole(values, "a row's values");
  }
  for (size_t r = 0; r < ranks_.size(); ++r) {
    const RankHeads& h = heads_[r];
    std::vector<std::pair<Tensor, Tensor>> mine;
    for (const auto& [keys, values] : rows) {
      if (!keys.defined()) {
        mine.emplace_back();
      } else {
        mine.emplace_back(keys.slice(1, h.first, h.first + h.count), values.slice(1, h.first, h.first + h.count));
      }
    }
    ranks_[r]->add_rows(mine);
  }
}

void TensorParallelCache::remove_rows(const std::vector<int64_t>& gone) {
  for (auto& c : ranks_) c->remove_rows(gone);
}

std::vector<Tensor> TensorParallelCache::row_state(int64_t b) const {
  std::vector<std::vector<Tensor>> per_rank;
  for (const auto& c : ranks_) per_rank.push_back(c->row_state(b));
  return join(per_rank);
}

}  // namespace lmx::models
