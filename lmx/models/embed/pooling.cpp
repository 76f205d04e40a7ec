#include "lmx/models/embed/pooling.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "lmx/base/error.h"

namespace lmx::models::embed {

PoolingMode parse_pooling_mode(std::string_view name) {
  // Short names, and the names sentence-transformers >= 6 writes in "pooling_mode".
  if (name == "cls" || name == "first" || name == "cls_token") return PoolingMode::cls;
  if (name == "mean" || name == "mean_tokens") return PoolingMode::mean;
  if (name == "max" || name == "max_tokens") return PoolingMode::max;
  if (name == "mean_sqrt_len" || name == "mean_sqrt_len_tokens") return PoolingMode::mean_sqrt_len;
  if (name == "weightedmean" || name == "weighted_mean" || name == "weightedmean_tokens") return PoolingMode::weighted_mean;
  if (name == "lasttoken" || name == "last" || name == "last_token") return PoolingMode::last_token;
  throw InvalidArgument("pooling '" + std::string(name) +
                        "' is not one of cls, first, mean, max, mean_sqrt_len, weightedmean, last");
}

std::string pooling_mode_name(PoolingMode mode) {
  switch (mode) {
    case PoolingMode::cls: return "cls";
    case PoolingMode::mean: return "mean";
    case PoolingMode::max: return "max";
    case PoolingMode::mean_sqrt_len: return "mean_sqrt_len";
    case PoolingMode::weighted_mean: return "weightedmean";
    case PoolingMode::last_token: return "lasttoken";
  }
  return "?";
}

Tensor pool(const Tensor& hidden, const std::vector<int64_t>& lengths, std::span<const PoolingMode> modes) {
  if (hidden.ndim() != 3) throw ShapeError("pool: hidden state must be [batch, seq, dim], got " + shape_str(hidden.shape()));
  if (modes.empty()) throw InvalidArgument("pool: no pooling mode");
  const int64_t B = hidden.dim(0), L = hidden.dim(1), D = hidden.dim(2);
  if (static_cast<int64_t>(lengths.size()) != B) {
    throw ShapeError("pool: " + std::to_string(lengths.size()) + " lengths for a batch of " + std::to_string(B));
  }
  const Tensor h = hidden.to(Device::cpu()).to(Dtype::f32).contiguous();
  const float* x = h.data<float>();
  const int64_t M = static_cast<int64_t>(modes.size());
  Tensor out = Tensor::empty({B, D * M}, Dtype::f32);
  float* o = out.data<float>();
  std::vector<float> acc(static_cast<size_t>(D));
  for (int64_t b = 0; b < B; ++b) {
    const int64_t n = lengths[static_cast<size_t>(b)];
    if (n < 1 || n > L) throw InvalidArgument("pool: row " + std::to_string(b) + " has length " + std::to_string(n));
    const float* row = x + b * L * D;
    for (int64_t m = 0; m < M; ++m) {
      float* dst = o + b * D * M + m * D;
      const PoolingMode mode = modes[static_cast<size_t>(m)];
      switch (mode) {
        case PoolingMode::cls:
          std::copy(row, row + D, dst);
          break;
        case PoolingMode::last_token:
          std::copy(row + (n - 1) * D, row + n * D, dst);
          break;
        case PoolingMode::max:
          std::fill(dst, dst + D, -std::numeric_limits<float>::infinity());
          for (int64_t s = 0; s < n; ++s)
            for (int64_t d = 0; d < D; ++d) dst[d] = std::max(dst[d], row[s * D + d]);
          break;
        case PoolingMode::mean:
        case PoolingMode::mean_sqrt_len:
        case PoolingMode::weighted_mean: {
          std::fill(acc.begin(), acc.end(), 0.0f);
          float weight_sum = 0.0f;
          for (int64_t s = 0; s < n; ++s) {
            const float w = mode == PoolingMode::weighted_mean ? static_cast<float>(s + 1) : 1.0f;
            weight_sum += w;
            for (int64_t d = 0; d < D; ++d) acc[static_cast<size_t>(d)] += w * row[s * D + d];
          }
          const float denom = mode == PoolingMode::mean_sqrt_len ? std::sqrt(weight_sum) : weight_sum;
          for (int64_t d = 0; d < D; ++d) dst[d] = acc[static_cast<size_t>(d)] / denom;
          break;
        }
      }
    }
  }
  return out;
}

Tensor l2_normalize_rows(const Tensor& x) {
  if (x.ndim() != 2) throw ShapeError("normalize: expected [rows, dim], got " + shape_str(x.shape()));
  Tensor out = x.to(Device::cpu()).to(Dtype::f32).contiguous().clone();
  float* p = out.data<float>();
  const int64_t R = x.dim(0), D = x.dim(1);
  for (int64_t r = 0; r < R; ++r) {
    double sq = 0.0;
    for (int64_t d = 0; d < D; ++d) sq += static_cast<double>(p[r * D + d]) * p[r * D + d];
    const float norm = std::max(static_cast<float>(std::sqrt(sq)), 1e-12f);
    for (int64_t d = 0; d < D; ++d) p[r * D + d] /= norm;
  }
  return out;
}

}  // namespace lmx::models::embed
