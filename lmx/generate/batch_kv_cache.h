// The KV cache of a left-padded batch: row b's prompt starts after left_padding[b] pad
// positions. Keys are stored at padded positions; make_mask hides the padding (and
// applies causality and the layer's window), and attention rotates row b's queries and
// keys at their true positions (offset - left_padding[b] + s).
//
// Rows may join and leave between steps (continuous batching): a sequence prefilled
// alone joins as the last row, left-padded to the batch's length (or the batch is
// padded to its length), and a row that leaves takes its keys with it; positions no
// remaining row sees are dropped from the front once they are half the batch's length
// or more (until then they stay, masked). The buffers hold rows in steps of kRowStep:
// rows join into free rows and leave by moving the later rows up, in place, without a
// new buffer (each new one is memory the kernel clears page by page) as long as no row
// is longer than the batch and no positions are dropped.
#pragma once

#include "lmx/models/language_model.h"
#include "lmx/nn/kv_cache.h"

namespace lmx::generate {

class BatchKVCache : public nn::KVCache {
 public:
  explicit BatchKVCache(std::vector<int64_t> left_padding, int64_t step = 256);
  int64_t offset() const override { return offset_; }
  std::pair<Tensor, Tensor> update_and_fetch(const Tensor& keys, const Tensor& values) override;
  Tensor make_mask(int64_t q_len, int64_t window) const override;
  std::vector<int64_t> left_padding() const override { return pad_; }
  bool is_trimmable() const override { return true; }
  int64_t trim(int64_t n) override;
  std::vector<Tensor> state() const override;
  std::string class_name() const override { return "BatchKVCache"; }
  std::unique_ptr<nn::KVCache> copy() const override;
  std::unique_ptr<nn::KVCache> heads(int64_t begin, int64_t count) const override;

  static constexpr int64_t kRowStep = 8;
  int64_t rows() const { return static_cast<int64_t>(pad_.size()); }
  // Appends a row holding keys / values [1, kv_heads, n, head_dim] (undefined: n = 0)
  // at positions 0..n-1 of its sequence.
  void add_row(const Tensor& keys, const Tensor& values);
  // Appends several rows as add_row does, copying the batch once.
  void add_rows(const std::vector<std::pair<Tensor, Tensor>>& rows) override;
  // Removes row b (later rows move up by one).
  void remove_row(int64_t b);
  // Removes the rows `gone` (ascending), copying the batch once.
  void remove_rows(const std::vector<int64_t>& gone) override;
  // Row b's keys and values at positions 0.. of its sequence: views [1, kv_heads, n,
  // head_dim] (empty while the batch holds no keys).
  std::vector<Tensor> row_state(int64_t b) const override;

 private:
  // The rows in use: views [B, H, capacity, D] of the buffers.
  Tensor used_keys() const { return keys_.slice(0, 0, rows()); }
  Tensor used_values() const { return values_.slice(0, 0, rows()); }

  std::vector<int64_t> pad_;
  int64_t step_;
  int64_t offset_ = 0;
  Tensor keys_, values_;  // [row capacity >= B, H, capacity, D]
};

// The caches a sequence is prefilled into alone before it joins a batch: the model's own
// (state caches) where it has them, else plain KV caches (windowed layers too: the batch
// cache masks by window) whose buffers grow in steps of `step` positions.
nn::KVCacheList batch_row_caches(const models::LanguageModel& model, int64_t step = 256);

// Joins the caches of one sequence prefilled alone (its model's state caches and plain KV
// caches, one per layer) to a batch's as its last row: state rows are appended, keys and
// values left-padded to the batch's length (BatchKVCache::add_row). An empty batch list
// first gets its caches (StateCache for state layers, BatchKVCache for the others).
void join_batch_row(nn::KVCacheList& batch, const nn::KVCacheList& row);

// Joins several rows at once to a batch of attention layers only (one copy of the
// batch): rows[r][i] is row r's keys and values of layer i ([1, kv_heads, n, head_dim]
// each; empty: none). An empty batch list first gets its BatchKVCaches (buffers growing
// in steps of `step` positions).
void join_batch_rows(nn::KVCacheList& batch, const std::vector<std::vector<std::vector<Tensor>>>& rows,
                     int64_t step = 256);

}  // namespace lmx::generate
