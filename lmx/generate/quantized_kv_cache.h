// A KV cache that stores keys and values affine-quantized along head_dim in the MLX
// layout (mlx-lm's QuantizedKVCache), with separate bit widths for keys and values.
// Attention reads it through update_and_fetch_quantized and dequantizes one block of
// positions at a time (ops::quantized_scaled_dot_product_attention).
#pragma once

#include "lmx/nn/kv_cache.h"

namespace lmx::generate {

// InvalidArgument "`what` BITS is not one of 2, 3, 4, 5, 6, 8" / "`what` N is not 32, 64
// or 128": the bit widths and group sizes a quantized KV cache takes (`what` names the
// field or option the value came from).
void check_kv_bits(int bits, const std::string& what);
void check_kv_group_size(int group_size, const std::string& what);

class QuantizedKVCache : public nn::KVCache {
 public:
  // bits / v_bits in {2, 3, 4, 5, 6, 8}; group_size in {32, 64, 128}.
  QuantizedKVCache(int group_size = 64, int bits = 8, int v_bits = 0, int64_t step = 256);
  // From saved state: {k_w, k_scales, k_biases, v_w, v_scales, v_biases}, each
  // [batch, heads, offset, ...]; bit widths follow from the shapes.
  QuantizedKVCache(const std::vector<Tensor>& state, int group_size, int64_t step = 256);
  int64_t offset() const override { return offset_; }
  std::pair<Tensor, Tensor> update_and_fetch(const Tensor& keys, const Tensor& values) override;
  bool is_quantized() const override { return true; }
  nn::QuantizedKV update_and_fetch_quantized(const Tensor& keys, const Tensor& values) override;
  bool is_trimmable() const override { return true; }
  int64_t trim(int64_t n) override;
  std::vector<Tensor> state() const override;
  // mlx-lm (Python) order: offset, group_size, bits.
  std::vector<std::string> meta_state() const override;
  std::string class_name() const override { return "QuantizedKVCache"; }
  std::unique_ptr<nn::KVCache> copy() const override;
  std::unique_ptr<nn::KVCache> heads(int64_t begin, int64_t count) const override;

  int bits() const { return bits_; }
  int v_bits() const { return v_bits_; }
  int group_size() const { return group_; }
  // Dequantized keys and values [batch, heads, offset, dim] (tests, conversions).
  std::pair<Tensor, Tensor> dequantized() const;

 private:
  nn::QuantizedKV view(int64_t n) const;

  int group_, bits_, v_bits_;
  int64_t step_;
  int64_t offset_ = 0;
  nn::QuantizedKV buf_;  // capacity along dim 2
};

// Quantizes x [B, H, L, D] (any float dtype) along D: {w u32 [B, H, L, D*bits/32],
// scales f32 [B, H, L, D/group], biases f32 [B, H, L, D/group]}.
std::vector<Tensor> quantize_rows(const Tensor& x, int group_size, int bits);
// The inverse: f32 [B, H, L, D].
Tensor dequantize_rows(
    const Tensor& w, const Tensor& scales, const Tensor& biases, int group_size, int bits);

}  // namespace lmx::generate
