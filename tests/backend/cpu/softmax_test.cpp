#include "lmx/backend/cpu/softmax.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "nn_test_util.h"

namespace lmx::cpu {
namespace {

using testing::available_paths;
using testing::path_name;
using testing::random_vector;
using testing::ScopedCpuPath;

constexpr float kInf = std::numeric_limits<float>::infinity();

// Rows of random logits at several magnitudes, some -inf entries, odd widths, strided.
TEST(Softmax, MatchesDoubleReference) {
  ThreadPool pool(2);
  for (int64_t dim : {1, 3, 8, 15, 31, 64, 257, 1000, 32003}) {
    for (float magnitude : {1.0f, 20.0f, 300.0f}) {
      const int64_t rows = 6, ldx = dim + 2, ldo = dim + 1;
      auto x = random_vector(static_cast<size_t>(rows * ldx), static_cast<uint32_t>(dim),
                             -magnitude, magnitude);
      // Row 1: a few -inf entries (masked logits), never all of them.
      for (int64_t i = 1; i < dim; i += 3) x[1 * ldx + i] = -kInf;
      for (CpuTier tier : available_paths()) {
        ScopedCpuPath path(tier);
        std::vector<float> sm(static_cast<size_t>(rows * ldo)), lsm(sm.size());
        softmax(x.data(), rows, dim, ldx, sm.data(), ldo, pool);
        log_softmax(x.data(), rows, dim, ldx, lsm.data(), ldo, pool);
        for (int64_t r = 0; r < rows; ++r) {
          const float* xr = x.data() + r * ldx;
          double m = -kInf;
          for (int64_t i = 0; i < dim; ++i) m = std::max<double>(m, xr[i]);
          double s = 0;
          for (int64_t i = 0; i < dim; ++i) s += std::exp(xr[i] - m);
          double total = 0;
          for (int64_t i = 0; i < dim; ++i) {
            const double p = std::exp(xr[i] - m) / s;
            const double lp = xr[i] - m - std::log(s);
            const float got = sm[r * ldo + i];
            total += got;
            ASSERT_NEAR(got, p, 4e-6 * p + 1e-30)
                << path_name(tier) << " dim " << dim << " mag " << magnitude;
            if (std::isinf(xr[i])) {
              ASSERT_EQ(lsm[r * ldo + i], -kInf);
            } else {
              ASSERT_NEAR(lsm[r * ldo + i], lp, 1e-6 * (std::abs(lp) + 1.0))
                  << path_name(tier) << " dim " << dim;
            }
          }
          EXPECT_NEAR(total, 1.0, 1e-5);
        }
      }
    }
  }
}

TEST(Softmax, FullyMaskedRowGivesZerosAndInPlaceWorks) {
  ThreadPool pool(1);
  for (CpuTier tier : available_paths()) {
    ScopedCpuPath path(tier);
    std::vector<float> x(19, -kInf), y(19, 5.0f), ly(19, 5.0f);
    softmax(x.data(), 1, 19, 19, y.data(), 19, pool);
    log_softmax(x.data(), 1, 19, 19, ly.data(), 19, pool);
    for (float v : y) EXPECT_EQ(v, 0.0f) << path_name(tier);
    for (float v : ly) EXPECT_EQ(v, -kInf);

    auto a = random_vector(4 * 37, 3, -4, 4);
    std::vector<float> ref(a.size());
    softmax(a.data(), 4, 37, 37, ref.data(), 37, pool);
    softmax(a.data(), 4, 37, 37, a.data(), 37, pool);
    EXPECT_EQ(a, ref);
  }
}

TEST(Softmax, VectorTiersMatchScalar) {
  if (available_paths().size() < 2) GTEST_SKIP() << "no vector tier (needs AVX2)";
  ThreadPool pool(2);
  const int64_t rows = 33, dim = 129;
  const auto x = random_vector(static_cast<size_t>(rows * dim), 21, -10, 10);
  std::vector<float> a(x.size()), b(x.size());
  {
    ScopedCpuPath p(CpuTier::scalar);
    softmax(x.data(), rows, dim, dim, a.data(), dim, pool);
  }
  for (CpuTier tier : available_paths()) {
    ScopedCpuPath p(tier);
    softmax(x.data(), rows, dim, dim, b.data(), dim, pool);
    for (size_t i = 0; i < x.size(); ++i) ASSERT_NEAR(a[i], b[i], 4e-6 * a[i]) << path_name(tier) << i;
  }
}

}  // namespace
}  // namespace lmx::cpu
