// The caches of a split model (TensorParallelLM, issue 24): one layer's caches, one a
// rank, each holding the rank's kv heads, that read and write as the whole model's.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "lmx/nn/kv_cache.h"

namespace lmx::models {

// Where a split layer's kv heads are: a rank's cache holds the whole model's kv heads
// [first, first + count) (with fewer kv heads than ranks, several ranks hold the same one).
struct RankHeads {
  int64_t first = 0;
  int64_t count = 0;
};

// One layer's caches, one per rank (rank r's holding heads[r]), that reads and writes as
// the whole model's cache would: offset, trim, copy and the batch rows act on every rank's;
// state() and row_state() join the ranks' heads back into the whole model's layout (so a
// prompt-cache file or a prefix-cache entry of a split model is the whole model's, and the
// other way round), class_name(), meta_state() and is_quantized() are rank 0's; buffers()
// lists every rank's (the wired-memory accounting).
class TensorParallelCache : public nn::KVCache {
 public:
  // `whole` (the whole model's layout: fresh, or holding positions) split by heads.
  TensorParallelCache(const nn::KVCache& whole, std::vector<RankHeads> heads);
  int64_t offset() const override { return ranks_.front()->offset(); }
  std::pair<Tensor, Tensor> update_and_fetch(const Tensor& keys, const Tensor& values) override;
  std::vector<int64_t> left_padding() const override { return ranks_.front()->left_padding(); }
  bool is_quantized() const override { return ranks_.front()->is_quantized(); }
  bool is_trimmable() const override;
  int64_t trim(int64_t n) override;
  std::vector<Tensor> state() const override;
  std::vector<std::string> meta_state() const override { return ranks_.front()->meta_state(); }
  std::vector<Tensor> buffers() const override;
  std::string class_name() const override { return ranks_.front()->class_name(); }
  std::unique_ptr<nn::KVCache> copy() const override;
  void add_rows(const std::vector<std::pair<Tensor, Tensor>>& rows) override;
  void remove_rows(const std::vector<int64_t>& gone) override;
  std::vector<Tensor> row_state(int64_t b) const override;
  std::vector<std::unique_ptr<nn::KVCache>>& ranks() { return ranks_; }

 private:
  TensorParallelCache(std::vector<std::unique_ptr<nn::KVCache>> ranks, std::vector<RankHeads> heads)
      : ranks_(std::move(ranks)), heads_(std::move(heads)) {}
  // The whole model's kv heads of the layer, and a check that t [B, H, ...] has them.
  int64_t whole_heads() const;
  void check_whole(const Tensor& t, const char* what) const;
  // Rank r's arrays of the same kind joined along the heads (each head once).
  std::vector<Tensor> join(const std::vector<std::vector<Tensor>>& per_rank) const;

  std::vector<std::unique_ptr<nn::KVCache>> ranks_;
  std::vector<RankHeads> heads_;
};

}  // namespace lmx::models
