#include "lmx/nn/rope.h"

#include <cmath>

#include "lmx/base/error.h"
#include "lmx/core/ops/nn.h"

namespace lmx::nn {
namespace {

// 1 / base^(2i / dim) in f32, as transformers computes it.
std::vector<float> default_inv_freq(double base, int64_t dim) {
  std::vector<float> out(static_cast<size_t>(dim / 2));
  for (int64_t i = 0; i < dim / 2; ++i) {
    float expo = static_cast<float>(2 * i) / static_cast<float>(dim);
    out[i] = 1.0f / std::pow(static_cast<float>(base), expo);
  }
  return out;
}

}  // namespace

RotaryEmbedding::RotaryEmbedding(RopeConfig c) : config_(std::move(c)) {
  const auto& t = config_.type;
  if (config_.dim <= 0 || config_.dim % 2 != 0) {
    throw FormatError("rope: rotary dimension " + std::to_string(config_.dim) + " must be even and positive");
  }
  if (t != "default" && t != "linear" && t != "dynamic" && t != "llama3" && t != "longrope") {
    throw Unsupported("rope: scaling type '" + t + "' is not supported yet");
  }
  if (t == "longrope") {
    size_t half = static_cast<size_t>(config_.dim / 2);
    if (config_.short_factor.size() != half || config_.long_factor.size() != half) {
      throw FormatError("rope: longrope short_factor/long_factor must have " + std::to_string(half) +
                        " entries");
    }
  }
  base_inv_freq_ = default_inv_freq(config_.theta, config_.dim);
  if (t == "linear") {
    for (auto& f : base_inv_freq_) f = f / static_cast<float>(config_.factor);
  } else if (t == "llama3") {
    const double old_ctx = static_cast<double>(config_.original_max_position_embeddings);
    const double low_wavelen = old_ctx / config_.low_freq_factor;
    const double high_wavelen = old_ctx / config_.high_freq_factor;
    const float factor = static_cast<float>(config_.factor);
    for (auto& f : base_inv_freq_) {
      const float wavelen = 2.0f * static_cast<float>(M_PI) / f;
      float scaled = wavelen > static_cast<float>(low_wavelen) ? f / factor : f;
      const bool medium = !(wavelen < static_cast<float>(high_wavelen)) &&
                          !(wavelen > static_cast<float>(low_wavelen));
      if (medium) {
        float smooth = (static_cast<float>(old_ctx) / wavelen - static_cast<float>(config_.low_freq_factor)) /
                       static_cast<float>(config_.high_freq_factor - config_.low_freq_factor);
        scaled = (1.0f - smooth) * scaled / factor + smooth * scaled;
      }
      f = scaled;
    }
  }
}

std::vector<float> RotaryEmbedding::inv_freq(int64_t seq_len) const {
  const auto& t = config_.type;
  if (t == "dynamic" && seq_len > config_.max_position_embeddings) {
    const double dim = static_cast<double>(config_.dim);
    const double base =
        config_.theta * std::pow(config_.factor * static_cast<double>(seq_len) /
                                         static_cast<double>(config_.max_position_embeddings) -
                                     (config_.factor - 1.0),
                                 dim / (dim - 2.0));
    return default_inv_freq(base, config_.dim);
  }
  if (t == "longrope") {
    const int64_t original = config_.original_max_position_embeddings > 0
                                 ? config_.original_max_position_embeddings
                                 : config_.max_position_embeddings;
    const auto& ext = seq_len > original ? config_.long_factor : config_.short_factor;
    std::vector<float> out(base_inv_freq_.size());
    for (size_t i = 0; i < out.size(); ++i) {
      float expo = static_cast<float>(2 * i) / static_cast<float>(config_.dim);
      out[i] = 1.0f / (static_cast<float>(ext[i]) * std::pow(static_cast<float>(config_.theta), expo));
    }
    return out;
  }
  return base_inv_freq_;
}

float RotaryEmbedding::attention_scaling() const {
  if (config_.type != "longrope") return 1.0f;
  if (config_.attention_factor > 0) return static_cast<float>(config_.attention_factor);
  const int64_t original = config_.original_max_position_embeddings;
  if (original <= 0) return 1.0f;
  const double factor = static_cast<double>(config_.max_position_embeddings) / static_cast<double>(original);
  if (factor <= 1.0) return 1.0f;
  return static_cast<float>(std::sqrt(1.0 + std::log(factor) / std::log(static_cast<double>(original))));
}

Tensor RotaryEmbedding::apply(const Tensor& x, int64_t offset) const {
  const int64_t seq_len = offset + x.dim(2);
  std::vector<float> freqs = inv_freq(seq_len);
  if (config_.inverted) {
    for (float& f : freqs) f = -f;  // cos is even, sin odd: the same rotation backwards
  }
  ops::RopeParams p;
  // The frequencies go where x is (ops never move tensors between devices themselves).
  p.inv_freq = Tensor::from_vector(freqs, {static_cast<int64_t>(freqs.size())}).to(x.device());
  p.rotary_dim = config_.dim;
  p.traditional = config_.traditional;
  p.offset = offset;
  p.mscale = attention_scaling();
  return ops::rope(x, p);
}

}  // namespace lmx::nn
