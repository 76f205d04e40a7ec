// The plain KV cache: keys and values of every position, in buffers that grow in steps
// (256 positions) so appending one token does not copy the history.
#pragma once

#include "lmx/nn/appendable_kv.h"
#include "lmx/nn/kv_cache.h"

namespace lmx::generate {

class QuantizedKVCache;

class SimpleKVCache : public nn::KVCache, public nn::AppendableKV {
 public:
  explicit SimpleKVCache(int64_t step = 256) : step_(step) {}
  // From saved state: keys / values [batch, kv_heads, offset, head_dim].
  SimpleKVCache(const Tensor& keys, const Tensor& values, int64_t step = 256);
  int64_t offset() const override { return offset_; }
  std::pair<Tensor, Tensor> update_and_fetch(const Tensor& keys, const Tensor& values) override;
  std::pair<Tensor, Tensor> reserve(const Tensor& keys, const Tensor& values) override;
  std::pair<Tensor, Tensor> commit(int64_t n) override;
  bool is_trimmable() const override { return true; }
  int64_t trim(int64_t n) override;
  // The valid part of the buffers: [batch, kv_heads, offset, head_dim] each (or none).
  std::vector<Tensor> state() const override;
  std::vector<std::string> meta_state() const override { return {""}; }
  std::string class_name() const override { return "KVCache"; }
  std::unique_ptr<nn::KVCache> copy() const override;
  std::unique_ptr<nn::KVCache> heads(int64_t begin, int64_t count) const override;
  // The same positions, affine-quantized (bits for keys, v_bits for values).
  std::unique_ptr<QuantizedKVCache> to_quantized(int group_size, int bits, int v_bits) const;
  // Positions the buffers hold before they grow (0 before the first append), and the
  // buffers' identity: what a captured decode step (decode_graph.h) baked in.
  int64_t capacity() const { return keys_.defined() ? keys_.dim(2) : 0; }
  const void* buffer_id() const { return keys_.defined() ? keys_.raw_data() : nullptr; }
  Device device() const { return keys_.defined() ? keys_.device() : Device::cpu(); }
  // Counts n positions written outside update_and_fetch (a replayed decode step).
  void advance(int64_t n) { offset_ += n; }

 private:
  int64_t step_;
  int64_t offset_ = 0;
  Tensor keys_, values_;  // [batch, kv_heads, capacity, head_dim]
};

// Shape / dtype checks shared by the caches: keys and values [B, H, n, D] with equal
// B, H and n.
void check_kv(const Tensor& keys, const Tensor& values, const char* cache);

}  // namespace lmx::generate
