// The cache of a recurrent layer (Mamba, Mamba2, short convolution, gated delta-net,
// RG-LRU): a fixed set of arrays that each call replaces (a convolution's last inputs,
// a scan's state) instead of keys and values that grow. It sits behind the KVCache
// interface so a model's cache list mixes both kinds per layer (LanguageModel::
// make_layer_cache). Saved like mlx-lm's ArraysCache: the arrays in order, an empty meta
// state. A state cannot be trimmed: going back means re-running from an earlier copy().
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "lmx/nn/kv_cache.h"

namespace lmx::nn {

class StateCache : public KVCache {
 public:
  // `arrays` slots, all empty (a fresh sequence: layers start from zeros).
  explicit StateCache(size_t arrays) : arrays_(arrays) {}
  // From saved state (arrays are copied), `offset` tokens already seen.
  StateCache(const std::vector<Tensor>& arrays, int64_t offset);

  int64_t offset() const override { return offset_; }
  // Layers call this once per forward with the number of tokens they consumed.
  void advance(int64_t tokens) { offset_ += tokens; }
  void set_offset(int64_t offset) { offset_ = offset; }

  size_t size() const { return arrays_.size(); }
  // Layers call this first: a cache of no arrays (loaded before anything was stored)
  // takes n slots; InvalidArgument when it holds another number of arrays.
  void expect_arrays(size_t n, const char* layer);
  // Array i, undefined until the layer first stores it.
  const Tensor& get(size_t i) const;
  void set(size_t i, Tensor value);

  // Batched decoding of separately prefilled sequences (the batch scheduler): appends
  // the rows of `other` (same arrays, batch first) or drops row r. No padding is involved,
  // so a row's state is exactly that of its sequence.
  void append_rows(const StateCache& other);
  void remove_row(int64_t r);

  std::pair<Tensor, Tensor> update_and_fetch(const Tensor& keys, const Tensor& values) override;
  // Every array once all are set, else none.
  std::vector<Tensor> state() const override;
  std::vector<std::string> meta_state() const override { return {""}; }
  std::string class_name() const override { return "ArraysCache"; }
  std::unique_ptr<KVCache> copy() const override;

 private:
  std::vector<Tensor> arrays_;
  int64_t offset_ = 0;
};

}  // namespace lmx::nn
