#include "lmx/backend/cpu/norm.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "nn_test_util.h"

namespace lmx::cpu {
namespace {

using testing::available_paths;
using testing::path_name;
using testing::random_vector;
using testing::ScopedCpuPath;

// A weight vector stored in `dtype`, plus the f32 values it really holds.
struct StoredWeight {
  std::vector<float> f32;
  std::vector<uint16_t> half;
  ChannelVector view(Dtype dt) const {
    return {dt == Dtype::f32 ? static_cast<const void*>(f32.data()) : half.data(), dt};
  }
};
StoredWeight make_weight(int64_t dim, Dtype dt, uint32_t seed) {
  StoredWeight w;
  w.f32 = random_vector(static_cast<size_t>(dim), seed, 0.5f, 1.5f);
  if (dt != Dtype::f32) {
    w.half = testing::to_half(w.f32, dt == Dtype::bf16);
    for (size_t i = 0; i < w.f32.size(); ++i) {
      w.f32[i] = dt == Dtype::bf16 ? bf16_to_f32(w.half[i]) : f16_to_f32(w.half[i]);
    }
  }
  return w;
}

constexpr int64_t kDims[] = {1, 5, 8, 13, 64, 100, 2051};
constexpr Dtype kDtypes[] = {Dtype::f32, Dtype::f16, Dtype::bf16};

TEST(RmsNorm, MatchesDoubleReferenceOnStridedRows) {
  ThreadPool pool(2);
  for (int64_t dim : kDims) {
    for (Dtype dt : kDtypes) {
      for (int variant = 0; variant < 3; ++variant) {  // weight, (1 + weight), no weight
        const int64_t rows = 7, ldx = dim + 3, ldo = dim + 5;
        const auto x =
            random_vector(static_cast<size_t>(rows * ldx), static_cast<uint32_t>(dim), -2, 2);
        const StoredWeight w = make_weight(dim, dt, 3);
        RmsNormOptions opt;
        opt.eps = 1e-5f;
        if (variant < 2) opt.weight = w.view(dt);
        opt.add_unit_offset = variant == 1;
        for (CpuTier tier : available_paths()) {
          ScopedCpuPath path(tier);
          std::vector<float> out(static_cast<size_t>(rows * ldo), -7.0f);
          rms_norm(x.data(), rows, dim, ldx, out.data(), ldo, opt, pool);
          for (int64_t r = 0; r < rows; ++r) {
            double ss = 0;
            for (int64_t i = 0; i < dim; ++i) ss += double(x[r * ldx + i]) * x[r * ldx + i];
            const double inv = 1.0 / std::sqrt(ss / dim + 1e-5);
            for (int64_t i = 0; i < dim; ++i) {
              double scale = variant == 2 ? 1.0 : w.f32[i] + (variant == 1 ? 1.0 : 0.0);
              const double ref = x[r * ldx + i] * inv * scale;
              ASSERT_NEAR(out[r * ldo + i], ref, 2e-6 * std::abs(ref) + 1e-7)
                  << path_name(tier) << " dim " << dim << " dtype " << dtype_name(dt) << " variant "
                  << variant;
            }
            for (int64_t i = dim; i < ldo; ++i)
              ASSERT_EQ(out[r * ldo + i], -7.0f) << "padding written";
          }
        }
      }
    }
  }
}

TEST(RmsNorm, InPlaceAndManyRowsAcrossThreads) {
  ThreadPool pool(2);
  const int64_t rows = 301, dim = 2048;
  const auto x = random_vector(static_cast<size_t>(rows * dim), 5, -3, 3);
  const StoredWeight w = make_weight(dim, Dtype::bf16, 9);
  RmsNormOptions opt;
  opt.weight = w.view(Dtype::bf16);
  std::vector<std::vector<float>> results;
  for (CpuTier tier : available_paths()) {
    ScopedCpuPath path(tier);
    std::vector<float> out(x.size()), inplace = x;
    rms_norm(x.data(), rows, dim, dim, out.data(), dim, opt, pool);
    rms_norm(inplace.data(), rows, dim, dim, inplace.data(), dim, opt, pool);
    EXPECT_EQ(out, inplace) << path_name(tier);
    results.push_back(out);
  }
  // Every vector tier against the scalar reference (results[0]).
  for (size_t t = 1; t < results.size(); ++t) {
    for (size_t i = 0; i < x.size(); ++i) {
      ASSERT_NEAR(results[0][i], results[t][i], 2e-6 * std::abs(results[0][i]) + 1e-7)
          << path_name(available_paths()[t]) << " " << i;
    }
  }
}

TEST(LayerNorm, MatchesDoubleReferenceOnStridedRows) {
  ThreadPool pool(2);
  for (int64_t dim : kDims) {
    for (Dtype dt : kDtypes) {
      for (int variant = 0; variant < 4; ++variant) {  // bit 0: weight, bit 1: bias
        const int64_t rows = 5, ldx = dim + 1, ldo = dim + 2;
        // An offset mean, so the two-pass variance matters.
        const auto x =
            random_vector(static_cast<size_t>(rows * ldx), static_cast<uint32_t>(dim) + 1, 3, 5);
        const StoredWeight w = make_weight(dim, dt, 4), b = make_weight(dim, dt, 8);
        LayerNormOptions opt;
        if (variant & 1) opt.weight = w.view(dt);
        if (variant & 2) opt.bias = b.view(dt);
        for (CpuTier tier : available_paths()) {
          ScopedCpuPath path(tier);
          std::vector<float> out(static_cast<size_t>(rows * ldo));
          layer_norm(x.data(), rows, dim, ldx, out.data(), ldo, opt, pool);
          for (int64_t r = 0; r < rows; ++r) {
            double mean = 0, var = 0;
            for (int64_t i = 0; i < dim; ++i) mean += x[r * ldx + i];
            mean /= dim;
            for (int64_t i = 0; i < dim; ++i)
              var += (x[r * ldx + i] - mean) * (x[r * ldx + i] - mean);
            var /= dim;
            const double inv = 1.0 / std::sqrt(var + 1e-5);
            for (int64_t i = 0; i < dim; ++i) {
              double ref = (x[r * ldx + i] - mean) * inv;
              if (variant & 1) ref *= w.f32[i];
              if (variant & 2) ref += b.f32[i];
              // Relative to the normalized scale (values ~1): centred inputs lose a few
              // bits of the mean's rounding.
              ASSERT_NEAR(out[r * ldo + i], ref, 2e-5 * (std::abs(ref) + 1.0))
                  << path_name(tier) << " dim " << dim << " dtype " << dtype_name(dt) << " variant "
                  << variant;
            }
          }
        }
      }
    }
  }
}

}  // namespace
}  // namespace lmx::cpu
