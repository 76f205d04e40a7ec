// Rotary position embeddings and their scaled variants. Every variant differs only in
// the inverse frequencies (and an attention factor multiplying cos / sin), computed
// here as Hugging Face transformers computes them.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "lmx/core/tensor.h"

namespace lmx::nn {

struct RopeConfig {
  std::string type = "default";  // default | linear | dynamic | llama3 | longrope | yarn | proportional
  double theta = 10000.0;
  int64_t dim = 0;               // rotary dims (even, <= head_dim)
  bool traditional = false;      // interleaved pairs (GPT-J) instead of rotate_half
  bool inverted = false;         // rotate by minus the angle (NanoChat's rotate_half is [x2, -x1])
  int64_t max_position_embeddings = 2048;
  double factor = 1.0;
  // llama3
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  int64_t original_max_position_embeddings = 0;
  // longrope
  std::vector<double> short_factor;
  std::vector<double> long_factor;
  double attention_factor = 0.0;  // 0: derived
  // yarn
  double beta_fast = 32.0;
  double beta_slow = 1.0;
  double mscale = 0.0;          // 0: absent
  double mscale_all_dim = 0.0;  // 0: absent
  bool truncate = true;         // round the correction range to whole dimensions
  // proportional (Gemma 4's global layers): dim is the whole head; the first
  // int(proportion * dim / 2) pairs turn at 1 / theta^(2i / dim), the other pairs not at all.
  double proportion = 1.0;
};

// YaRN's attention magnitude correction: 0.1 * mscale * ln(factor) + 1 (1 when factor <= 1).
double yarn_mscale(double factor, double mscale);

// Rotation by per-token angles (M-RoPE, 2D vision RoPE), as transformers' rotate_half
// form: x [B, H, L, D] (any strides), cos / sin [L, R] or [B, 1, L, R] with R even and
// <= D; the first R dims of x are rotated (x * cos + rotate_half(x) * sin), the rest
// pass through.
Tensor apply_rotary(const Tensor& x, const Tensor& cos, const Tensor& sin);
// cos / sin [L, 2 * F] of angles [L, F] (f32, row-major), each angle used for the pair
// (i, i + F) of rotate_half.
std::pair<Tensor, Tensor> rotary_tables(const std::vector<float>& angles, int64_t rows);

class RotaryEmbedding {
 public:
  explicit RotaryEmbedding(RopeConfig config);
  const RopeConfig& config() const { return config_; }
  // x [batch, heads, seq, head_dim] at positions offset .. offset + seq - 1.
  Tensor apply(const Tensor& x, int64_t offset) const;
  // The inverse frequencies used when the longest position is seq_len - 1.
  std::vector<float> inv_freq(int64_t seq_len) const;
  float attention_scaling() const;

 private:
  RopeConfig config_;
  std::vector<float> base_inv_freq_;
};

}  // namespace lmx::nn
