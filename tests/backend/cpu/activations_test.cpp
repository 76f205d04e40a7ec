#include "lmx/backend/cpu/activations.h"

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
using testing::ulp_distance;

double reference(Activation act, double x) {
  switch (act) {
    case Activation::silu:
      return x / (1.0 + std::exp(-x));
    case Activation::gelu:
      return 0.5 * x * std::erfc(-x / std::sqrt(2.0));
    case Activation::gelu_tanh: {
      const double u = std::sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x);
      return x / (1.0 + std::exp(-2.0 * u));  // = x/2 (1 + tanh u), without cancellation
    }
    case Activation::exp:
      return std::exp(x);
    case Activation::tanh:
      return std::tanh(x);
    case Activation::sigmoid:
      return 1.0 / (1.0 + std::exp(-x));
    case Activation::softplus:
      return std::log1p(std::exp(x));
  }
  return 0.0;
}

const char* name(Activation a) {
  switch (a) {
    case Activation::silu:
      return "silu";
    case Activation::gelu:
      return "gelu";
    case Activation::gelu_tanh:
      return "gelu_tanh";
    case Activation::exp:
      return "exp";
    case Activation::tanh:
      return "tanh";
    case Activation::sigmoid:
      return "sigmoid";
    case Activation::softplus:
      return "softplus";
  }
  return "?";
}

// The vector exp is the base of softmax and attention: within 2 ulp of the correctly
// rounded e^x over every input with a normal result, checked on a dense sweep.
TEST(VecMath, ExpWithinTwoUlpOverNormalRange) {
  if (available_paths().size() < 2) GTEST_SKIP() << "no vector tier (needs AVX2)";
  ThreadPool pool(1);
  for (CpuTier tier : available_paths()) {
  if (tier == CpuTier::scalar) continue;
  SCOPED_TRACE(path_name(tier));
  ScopedCpuPath path(tier);
  const int64_t n = 1 << 21;
  std::vector<float> x(n), y(n);
  const float lo = -87.33f, hi = 88.72f;
  for (int64_t i = 0; i < n; ++i) x[i] = lo + (hi - lo) * static_cast<float>(i) / (n - 1);
  activation(Activation::exp, x.data(), y.data(), n, pool);
  int64_t worst = 0;
  float worst_x = 0;
  for (int64_t i = 0; i < n; ++i) {
    const float ref = static_cast<float>(std::exp(static_cast<double>(x[i])));
    const int64_t d = ulp_distance(y[i], ref);
    if (d > worst) {
      worst = d;
      worst_x = x[i];
    }
  }
  EXPECT_LE(worst, 2) << "at x = " << worst_x;
  // Also around 0 where relative accuracy matters most.
  for (int64_t i = 0; i < n; ++i) x[i] = -1e-3f + 2e-3f * static_cast<float>(i) / (n - 1);
  activation(Activation::exp, x.data(), y.data(), n, pool);
  for (int64_t i = 0; i < n; ++i) {
    ASSERT_LE(ulp_distance(y[i], static_cast<float>(std::exp(static_cast<double>(x[i])))), 1)
        << x[i];
  }
  }
}

TEST(VecMath, ExpEdgeValues) {
  for (CpuTier tier : available_paths()) {
    ScopedCpuPath path(tier);
    ThreadPool pool(1);
    const float inf = std::numeric_limits<float>::infinity();
    std::vector<float> x = {-inf, -1000.0f,      -104.0f, -100.0f, -90.0f, 88.8f, 89.0f, 1000.0f,
                            inf,  std::nanf(""), 0.0f,    -0.0f,   1.0f,   -1.0f, 88.7f, -87.3f};
    std::vector<float> y(x.size());
    activation(Activation::exp, x.data(), y.data(), static_cast<int64_t>(x.size()), pool);
    EXPECT_EQ(y[0], 0.0f) << path_name(tier);
    EXPECT_EQ(y[1], 0.0f);
    for (int i = 2; i <= 4; ++i) {  // subnormal results: absolute error of a few subnormal ulps
      EXPECT_NEAR(y[i], std::exp(static_cast<double>(x[i])), 1e-44) << x[i];
    }
    for (int i = 5; i <= 8; ++i) EXPECT_EQ(y[i], inf) << x[i];
    EXPECT_TRUE(std::isnan(y[9]));
    EXPECT_EQ(y[10], 1.0f);
    EXPECT_EQ(y[11], 1.0f);
    for (int i = 12; i < 16; ++i) {
      EXPECT_LE(ulp_distance(y[i], static_cast<float>(std::exp(static_cast<double>(x[i])))), 2);
    }
  }
}

// Every activation on both paths against a double-precision reference, over a wide
// range of inputs and an odd length (vector body + scalar tail).
TEST(Activations, MatchDoubleReference) {
  ThreadPool pool(2);
  const Activation acts[] = {Activation::silu,    Activation::gelu, Activation::gelu_tanh,
                             Activation::exp,     Activation::tanh, Activation::sigmoid,
                             Activation::softplus};
  for (float range : {1.0f, 8.0f, 30.0f}) {
    const auto x = random_vector(4099, 7, -range, range);
    for (Activation act : acts) {
      for (CpuTier tier : available_paths()) {
        ScopedCpuPath path(tier);
        std::vector<float> y(x.size());
        activation(act, x.data(), y.data(), static_cast<int64_t>(x.size()), pool);
        double worst = 0.0;
        for (size_t i = 0; i < x.size(); ++i) {
          const double ref = reference(act, x[i]);
          if (std::isinf(ref)) {
            EXPECT_EQ(y[i], static_cast<float>(ref));
            continue;
          }
          // Relative, with an absolute floor where the result is tiny (gelu / silu of
          // large negative x: x * e^x loses the rounding of x itself).
          const double err = std::abs(y[i] - ref) / (std::abs(ref) + 1e-30);
          const double tol =
              (act == Activation::gelu || act == Activation::gelu_tanh) ? 2e-5 : 4e-6;
          if (std::abs(y[i] - ref) > 1e-35) worst = std::max(worst, err);
          ASSERT_TRUE(err <= tol || std::abs(y[i] - ref) <= 1e-35)
              << name(act) << " " << path_name(tier) << " x=" << x[i] << " got " << y[i] << " want "
              << ref;
        }
        RecordProperty(std::string(name(act)) + "_" + path_name(tier) + "_range" +
                           std::to_string(static_cast<int>(range)),
                       std::to_string(worst * 1e6) + "e-6");
      }
    }
  }
}

TEST(Activations, MulVariantsEqualActivationTimesUp) {
  ThreadPool pool(2);
  // Large enough to be split over the pool.
  const auto g = random_vector(40003, 11, -6.0f, 6.0f);
  const auto u = random_vector(40003, 12, -2.0f, 2.0f);
  for (CpuTier tier : available_paths()) {
    ScopedCpuPath path(tier);
    for (Activation act : {Activation::silu, Activation::gelu, Activation::gelu_tanh}) {
      std::vector<float> a(g.size()), prod(g.size());
      activation(act, g.data(), a.data(), static_cast<int64_t>(g.size()), pool);
      activation_mul(act, g.data(), u.data(), prod.data(), static_cast<int64_t>(g.size()), pool);
      for (size_t i = 0; i < g.size(); ++i) ASSERT_EQ(prod[i], a[i] * u[i]) << name(act) << i;
    }
    std::vector<float> s(g.size()), ge(g.size()), gt(g.size());
    silu_mul(g.data(), u.data(), s.data(), static_cast<int64_t>(g.size()), pool);
    gelu_mul(g.data(), u.data(), ge.data(), static_cast<int64_t>(g.size()), false, pool);
    gelu_mul(g.data(), u.data(), gt.data(), static_cast<int64_t>(g.size()), true, pool);
    for (size_t i = 0; i < g.size(); i += 97) {
      EXPECT_NEAR(s[i], reference(Activation::silu, g[i]) * u[i], 1e-5) << path_name(tier);
      EXPECT_NEAR(ge[i], reference(Activation::gelu, g[i]) * u[i], 1e-5);
      EXPECT_NEAR(gt[i], reference(Activation::gelu_tanh, g[i]) * u[i], 1e-5);
    }
    // In place on the gate.
    std::vector<float> inplace = g;
    silu_mul(inplace.data(), u.data(), inplace.data(), static_cast<int64_t>(g.size()), pool);
    EXPECT_EQ(inplace, s);
  }
}

// Every vector tier against the scalar path, within 2e-6 relative (the vector tiers share
// one exp/erfc/tanh, vec_math.h: their values are also equal to each other bit for bit).
TEST(Activations, VectorTiersMatchScalarOnOddLengths) {
  if (available_paths().size() < 2) GTEST_SKIP() << "no vector tier (needs AVX2)";
  ThreadPool pool(1);
  for (int64_t n : {1, 3, 7, 8, 9, 15, 16, 17, 31, 33, 100, 1003}) {
    const auto x = random_vector(static_cast<size_t>(n), static_cast<uint32_t>(n), -5.0f, 5.0f);
    for (Activation act : {Activation::silu, Activation::gelu, Activation::gelu_tanh,
                           Activation::exp, Activation::tanh, Activation::sigmoid,
                           Activation::softplus}) {
      std::vector<std::vector<float>> outs;
      for (CpuTier tier : available_paths()) {
        ScopedCpuPath p(tier);
        std::vector<float> y(n), ym(n);
        activation(act, x.data(), y.data(), n, pool);
        activation_mul(act, x.data(), x.data(), ym.data(), n, pool);
        for (int64_t i = 0; i < n; ++i) ASSERT_EQ(ym[i], y[i] * x[i]) << path_name(tier);
        outs.push_back(y);
      }
      for (size_t t = 1; t < outs.size(); ++t) {
        for (int64_t i = 0; i < n; ++i) {
          EXPECT_NEAR(outs[0][i], outs[t][i], 2e-6 * (std::abs(outs[0][i]) + 1e-3))
              << name(act) << " " << path_name(available_paths()[t]) << " n " << n;
          EXPECT_EQ(outs[t][i], outs[1][i]) << name(act) << " " << path_name(available_paths()[t]);
        }
      }
    }
  }
}

}  // namespace
}  // namespace lmx::cpu
