// The interface attention layers use to keep keys and values between calls. The kinds
// (simple, rotating, quantized, chunked) live in lmx/generate; a model only says which
// it needs (make_cache) and calls update_and_fetch.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "lmx/base/error.h"
#include "lmx/core/ops/nn.h"
#include "lmx/core/tensor.h"

namespace lmx::nn {

// Keys and values affine-quantized along head_dim in the MLX layout (uint32 words,
// lowest bits first; x = scale * q + bias per group of `group_size` elements).
using QuantizedKV = ops::QuantizedKV;

class KVCache {
 public:
  virtual ~KVCache() = default;
  // Number of tokens seen so far (the absolute position of the next token).
  virtual int64_t offset() const = 0;
  // Appends keys / values [batch, kv_heads, new_tokens, head_dim] and returns the keys
  // and values to attend over. Unless make_mask() says otherwise, key j of the result
  // sits at absolute position `first_position() + j`.
  virtual std::pair<Tensor, Tensor> update_and_fetch(const Tensor& keys, const Tensor& values) = 0;
  // Absolute position of the first key returned by the last update_and_fetch.
  virtual int64_t first_position() const { return 0; }
  // The additive mask (f32 [q_len, kv_len] of 0 / -inf; or [batch, 1, q_len, kv_len])
  // for the keys returned by the last update, for the q_len queries just added (at
  // positions offset() - q_len ...), combining causality, the layer's sliding `window`
  // (0 = none) and what the cache itself evicts. Undefined: the keys are contiguous from
  // first_position() and plain causal + window attention is right.
  virtual Tensor make_mask(int64_t q_len, int64_t window) const {
    (void)q_len;
    (void)window;
    return {};
  }
  // Per-sequence positions (batched caches with left padding): the rope offset of row b
  // is offset() - left_padding()[b]. Empty: every row starts at position 0.
  virtual std::vector<int64_t> left_padding() const { return {}; }

  // Quantized caches store K / V quantized; attention then calls
  // update_and_fetch_quantized instead of update_and_fetch.
  virtual bool is_quantized() const { return false; }
  virtual QuantizedKV update_and_fetch_quantized(const Tensor& keys, const Tensor& values) {
    (void)keys;
    (void)values;
    throw Unsupported("kv cache: " + class_name() + " is not quantized");
  }

  // Whether trim() can drop positions now.
  virtual bool is_trimmable() const { return false; }
  // Drops the last n positions (at most offset()); returns how many were dropped.
  virtual int64_t trim(int64_t n) {
    (void)n;
    return 0;
  }
  // The arrays that describe the cache (saved in prompt-cache files) and the strings
  // that go with them, as mlx-lm names them (class_name) and orders them.
  virtual std::vector<Tensor> state() const = 0;
  virtual std::vector<std::string> meta_state() const { return {}; }
  // The tensors that hold the cache's memory (views of its buffers), for the wired-memory
  // accounting: state(), unless a cache builds its state on the fly.
  virtual std::vector<Tensor> buffers() const { return state(); }
  virtual std::string class_name() const = 0;
  // A deep copy (buffers cloned).
  virtual std::unique_ptr<KVCache> copy() const = 0;
  // A deep copy of kv heads [begin, begin + count) only (axis 1 of every buffer): a rank's
  // share of the whole model's cache under tensor parallelism.
  virtual std::unique_ptr<KVCache> heads(int64_t begin, int64_t count) const {
    (void)begin;
    (void)count;
    throw Unsupported("kv cache: " + class_name() + " cannot be split by heads");
  }

  // The rows of a batch that rows join and leave between steps (continuous batching,
  // BatchKVCache). add_rows appends rows of keys / values [1, kv_heads, n, head_dim] (an
  // undefined pair: a row with no positions yet); remove_rows drops rows `gone`
  // (ascending); row_state(b) is row b's keys and values from its first position.
  virtual void add_rows(const std::vector<std::pair<Tensor, Tensor>>& rows) {
    (void)rows;
    throw Unsupported("kv cache: " + class_name() + " has no batch rows");
  }
  virtual void remove_rows(const std::vector<int64_t>& gone) {
    (void)gone;
    throw Unsupported("kv cache: " + class_name() + " has no batch rows");
  }
  virtual std::vector<Tensor> row_state(int64_t b) const {
    (void)b;
    throw Unsupported("kv cache: " + class_name() + " has no batch rows");
  }
};

// A clone of heads [begin, begin + count) of a cache buffer [batch, heads, ...] (undefined
// stays undefined): what heads() copies.
inline Tensor clone_heads(const Tensor& buffer, int64_t begin, int64_t count) {
  if (!buffer.defined()) return {};
  if (begin < 0 || count < 0 || begin + count > buffer.dim(1)) {
    throw InvalidArgument("kv cache: heads [" + std::to_string(begin) + ", " + std::to_string(begin + count) +
                          ") of a cache of " + std::to_string(buffer.dim(1)) + " heads");
  }
  return buffer.slice(1, begin, begin + count).clone();
}

using KVCacheList = std::vector<std::unique_ptr<KVCache>>;

}  // namespace lmx::nn
