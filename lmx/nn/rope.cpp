#include "lmx/nn/rope.h"
#include "lmx/nn/rope_params.h"

#include <algorithm>
#include <cmath>
#include <deque>
#include <mutex>

#include "lmx/base/error.h"
#include "lmx/core/ops/elementwise.h"
#include "lmx/core/ops/nn.h"
#include "lmx/core/ops/shape.h"
#include "lmx/core/step_values.h"

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

// YaRN: interpolated frequencies (divided by factor) below the correction range,
// extrapolated (unchanged) above it, a linear ramp between.
void apply_yarn(const RopeConfig& c, std::vector<float>& inv_freq) {
  const double dim = static_cast<double>(c.dim);
  const double original = static_cast<double>(c.original_max_position_embeddings > 0
                                                  ? c.original_max_position_embeddings
                                                  : c.max_position_embeddings);
  auto correction_dim = [&](double rotations) {
    return dim * std::log(original / (rotations * 2.0 * M_PI)) / (2.0 * std::log(c.theta));
  };
  double low = correction_dim(c.beta_fast), high = correction_dim(c.beta_slow);
  if (c.truncate) {
    low = std::floor(low);
    high = std::ceil(high);
  }
  low = std::max(low, 0.0);
  high = std::min(high, dim - 1.0);
  if (low == high) high += 0.001;
  const float factor = static_cast<float>(c.factor);
  for (size_t i = 0; i < inv_freq.size(); ++i) {
    float ramp = static_cast<float>((static_cast<double>(i) - low) / (high - low));
    ramp = std::clamp(ramp, 0.0f, 1.0f);
    const float extrapolation = 1.0f - ramp;
    inv_freq[i] = inv_freq[i] / factor * (1.0f - extrapolation) + inv_freq[i] * extrapolation;
  }
}

}  // namespace

Tensor apply_rotary(const Tensor& x, const Tensor& cos, const Tensor& sin) {
  const int64_t R = cos.dim(-1), D = x.dim(-1);
  if (x.ndim() != 4 || R % 2 != 0 || R > D || cos.shape() != sin.shape() || cos.dim(-2) != x.dim(2)) {
    throw ShapeError("apply_rotary: x " + shape_str(x.shape()) + " with cos " + shape_str(cos.shape()) +
                     " and sin " + shape_str(sin.shape()));
  }
  Tensor rot = x.slice(3, 0, R);
  Tensor half = ops::concat({ops::neg(rot.slice(3, R / 2, R)), rot.slice(3, 0, R / 2)}, 3);
  Tensor out = ops::add(ops::mul(rot, cos), ops::mul(half, sin));
  return R == D ? out : ops::concat({out, x.slice(3, R, D)}, 3);
}

std::pair<Tensor, Tensor> rotary_tables(const std::vector<float>& angles, int64_t rows) {
  const int64_t F = rows > 0 ? static_cast<int64_t>(angles.size()) / rows : 0;
  LMX_ASSERT(F * rows == static_cast<int64_t>(angles.size()));
  std::vector<float> c(static_cast<size_t>(rows * 2 * F)), s(c.size());
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t i = 0; i < F; ++i) {
      const float a = angles[static_cast<size_t>(r * F + i)];
      for (int64_t h : {i, i + F}) {
        c[static_cast<size_t>(r * 2 * F + h)] = std::cos(a);
        s[static_cast<size_t>(r * 2 * F + h)] = std::sin(a);
      }
    }
  }
  return {Tensor::from_vector(c, {rows, 2 * F}), Tensor::from_vector(s, {rows, 2 * F})};
}

double yarn_mscale(double factor, double mscale) {
  return factor <= 1.0 ? 1.0 : 0.1 * mscale * std::log(factor) + 1.0;
}

RotaryEmbedding::RotaryEmbedding(RopeConfig c) : config_(std::move(c)) {
  const auto& t = config_.type;
  if (config_.dim <= 0 || config_.dim % 2 != 0) {
    throw FormatError("rope: rotary dimension " + std::to_string(config_.dim) + " must be even and positive");
  }
  if (t != "default" && t != "linear" && t != "dynamic" && t != "llama3" && t != "longrope" &&
      t != "yarn" && t != "proportional") {
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
  } else if (t == "yarn") {
    apply_yarn(config_, base_inv_freq_);
  } else if (t == "proportional") {
    if (config_.proportion <= 0.0 || config_.proportion > 1.0) {
      throw FormatError("rope: proportional partial_rotary_factor " + std::to_string(config_.proportion) +
                        " must be in (0, 1]");
    }
    const auto turning = static_cast<size_t>(std::floor(config_.proportion * static_cast<double>(config_.dim) / 2.0));
    for (size_t i = 0; i < base_inv_freq_.size(); ++i) {
      base_inv_freq_[i] = i < turning ? base_inv_freq_[i] / static_cast<float>(config_.factor) : 0.0f;
    }
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
  if (config_.type == "yarn") {
    if (config_.attention_factor > 0) return static_cast<float>(config_.attention_factor);
    if (config_.mscale > 0 && config_.mscale_all_dim > 0) {
      return static_cast<float>(yarn_mscale(config_.factor, config_.mscale) /
                                yarn_mscale(config_.factor, config_.mscale_all_dim));
    }
    return static_cast<float>(yarn_mscale(config_.factor, 1.0));
  }
  if (config_.type != "longrope") return 1.0f;
  if (config_.attention_factor > 0) return static_cast<float>(config_.attention_factor);
  const int64_t original = config_.original_max_position_embeddings;
  if (original <= 0) return 1.0f;
  const double factor = static_cast<double>(config_.max_position_embeddings) / static_cast<double>(original);
  if (factor <= 1.0) return 1.0f;
  return static_cast<float>(std::sqrt(1.0 + std::log(factor) / std::log(static_cast<double>(original))));
}

namespace {

// The inverse frequencies as an f32 tensor on `device`. A copy from the host waits for
// the device's queue and apply() runs twice per layer and step, so the tensors of recent
// frequency sets stay on their device: the values alone decide what the kernel reads.
Tensor freqs_on(std::vector<float> values, Device device) {
  const auto n = static_cast<int64_t>(values.size());
  if (device.is_cpu()) return Tensor::from_vector(values, {n});
  struct Entry {
    std::vector<float> values;
    Tensor tensor;  // [values.size()] on its device
  };
  static std::mutex mutex;
  static std::deque<Entry> recent;  // newest last; dynamic / longrope sets change with the length
  std::lock_guard<std::mutex> lock(mutex);
  for (const Entry& e : recent)
    if (e.tensor.device() == device && e.values == values) return e.tensor;
  Tensor t = Tensor::from_vector(values, {n}).to(device);
  constexpr size_t kKept = 32;
  if (recent.size() == kKept) recent.pop_front();
  recent.push_back({std::move(values), t});
  return t;
}

}  // namespace

ops::RopeParams rope_params(const RotaryEmbedding& rope, int64_t offset, int64_t seq, Device device) {
  const RopeConfig& c = rope.config();
  if ((c.type == "dynamic" || c.type == "longrope") && step_values(device)) {
    // A replayed decode step would keep this length's frequencies (lmx/core/step_values.h).
    throw Unsupported("rope: " + c.type + " frequencies change with the length: not in a captured decode step");
  }
  std::vector<float> freqs = rope.inv_freq(offset + seq);
  if (c.inverted) {
    for (float& f : freqs) f = -f;  // cos is even, sin odd: the same rotation backwards
  }
  ops::RopeParams p;
  // The frequencies go where x is (ops never move tensors between devices themselves).
  p.inv_freq = freqs_on(std::move(freqs), device);
  p.rotary_dim = c.dim;
  p.traditional = c.traditional;
  p.offset = offset;
  p.mscale = rope.attention_scaling();
  return p;
}

Tensor RotaryEmbedding::apply(const Tensor& x, int64_t offset) const {
  return ops::rope(x, rope_params(*this, offset, x.dim(2), x.device()));
}

}  // namespace lmx::nn
