// The NEON tier's own checks (aarch64 builds, run under qemu-aarch64 -cpu max in CI;
// skipped, visibly, elsewhere): what it detects and names, and that its int8 sdot path
// really runs where the CPU has sdot (a silent fall back to f32 would pass every
// tolerance) and never without it. The NEON kernels against the scalar reference on odd
// shapes are in matmul_test, quantized_test and cpu_tiers_test, which loop over the NEON
// tier with and without its extensions (cpu_tiers.h).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "cpu_tiers.h"
#include "nn_test_util.h"
#include "lmx/backend/cpu/quantized.h"
#include "lmx/base/thread_pool.h"
#include "lmx/core/half.h"

namespace lmx::cpu {
namespace {

using testing::ScopedCpuFeatures;

// The NEON features of this CPU, or a skip.
#define LMX_NEON_OR_SKIP(features)                                                         \
  CpuFeatures features;                                                                    \
  if (!testing::tier_features(CpuTier::neon, features))                                    \
  GTEST_SKIP() << "no NEON tier here (needs " << testing::tier_requirement(CpuTier::neon) \
               << ")"

TEST(NeonTier, NamesTheExtensionsItDetected) {
  LMX_NEON_OR_SKIP(f);
  ScopedCpuFeatures scope(f);
  const std::string name = active_cpu_tier_description();
  EXPECT_EQ(name.rfind("neon", 0), 0u) << name;
  EXPECT_EQ(name.find("dotprod") != std::string::npos, f.neon_dotprod) << name;
  EXPECT_EQ(name.find("i8mm") != std::string::npos, f.neon_i8mm) << name;
  EXPECT_EQ(name.find("bf16") != std::string::npos, f.neon_bf16) << name;
  // An x86 cap changes nothing on ARM; scalar turns the tier off.
  EXPECT_EQ(f.limited_to(CpuTier::avx2).tier(), CpuTier::neon);
  EXPECT_EQ(f.limited_to(CpuTier::scalar).tier(), CpuTier::scalar);
  EXPECT_EQ(testing::without_neon_extensions(f).tier(), CpuTier::neon);
}

struct Case {
  int bits, group;
  bool int8_path;  // the shapes the sdot kernel takes
};

// y = x @ dequant(W)^T of a random [n, k] weight for each activation precision asked.
// sigma: the standard deviation of the int8 path's error that x's rounding alone predicts.
// Rounding x[p] to int8 (step d = amax / 127 per group) leaves an error uniform in
// [-d/2, d/2] (variance d^2 / 12), independent across inputs; the int8 kernels multiply it by
// s * (q - q_offset) (the bias and q_offset terms use the exact f32 sum of x), so
// var(err[j]) = sum_g d_g^2 / 12 * sum_{p in g} (s_g (q_p - q_offset))^2.
struct Outputs {
  std::vector<float> ref, f32, int8;
  std::vector<double> sigma;
  double scale = 0;
};

Outputs run_case(const Case& c, const CpuFeatures& f, uint32_t seed) {
  const int64_t n = 37, k = 1024, m = 2;
  const auto src = testing::random_vector(static_cast<size_t>(n * k), seed, -0.3f, 0.3f);
  std::vector<uint32_t> w(static_cast<size_t>(n * k * c.bits / 32));
  std::vector<uint16_t> s(static_cast<size_t>(n * k / c.group)), b(s.size());
  quantize_affine(src.data(), n, k, c.bits, c.group, w.data(), s.data(), b.data(), Dtype::bf16);
  const QuantView view{w.data(), s.data(), b.data(), Dtype::bf16, n, k, c.bits, c.group};
  const PackedQuantWeight packed = pack_quantized(view);
  const auto x = testing::random_vector(static_cast<size_t>(m * k), seed + 1, -1.0f, 1.0f);
  ThreadPool pool(2);
  Outputs r;
  r.ref.resize(static_cast<size_t>(m * n));
  quantized_matmul_reference(x.data(), k, view, r.ref.data(), n, m);
  for (float v : r.ref) r.scale = std::max(r.scale, double(std::fabs(v)));
  std::vector<float> wd(static_cast<size_t>(n * k));  // dequant(W) = s q + b
  dequantize_affine(view, 0, n, wd.data(), k);
  const int64_t groups = k / c.group;
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double var = 0;
      for (int64_t g = 0; g < groups; ++g) {
        const size_t sg = static_cast<size_t>(j * groups + g);
        const double sc = bf16_to_f32(s[sg]), bias = bf16_to_f32(b[sg]);
        double amax = 0, a2 = 0;
        for (int64_t p = g * c.group; p < (g + 1) * c.group; ++p) {
          amax = std::max(amax, double(std::fabs(x[static_cast<size_t>(i * k + p)])));
          const double a = wd[static_cast<size_t>(j * k + p)] - bias - packed.q_offset() * sc;
          a2 += a * a;
        }
        var += (amax / 127) * (amax / 127) / 12 * a2;
      }
      r.sigma.push_back(std::sqrt(var));
    }
  ScopedCpuFeatures scope(f);
  for (auto [prec, out] : {std::pair{ActivationPrecision::f32, &r.f32},
                           std::pair{ActivationPrecision::int8, &r.int8}}) {
    out->assign(r.ref.size(), 0.0f);
    QuantMatmulOptions opt;
    opt.activations = prec;
    quantized_matmul(x.data(), k, packed, out->data(), n, m, opt, &pool);
  }
  return r;
}

double max_err(const std::vector<float>& y, const std::vector<float>& ref) {
  double e = 0;
  for (size_t i = 0; i < y.size(); ++i) e = std::max(e, double(std::fabs(y[i] - ref[i])));
  return e;
}

const Case kCases[] = {{8, 32, true}, {8, 128, true}, {4, 64, true},
                       {4, 128, true}, {4, 32, false}, {3, 64, false}};

TEST(NeonQuantized, Int8RequestTakesSdotWhereTheCpuHasIt) {
  LMX_NEON_OR_SKIP(f);
  if (!f.neon_dotprod) GTEST_SKIP() << "this CPU has no sdot (FEAT_DotProd)";
  uint32_t seed = 40;
  for (const Case& c : kCases) {
    const Outputs r = run_case(c, f, seed += 2);
    const double e32 = max_err(r.f32, r.ref), e8 = max_err(r.int8, r.ref);
    EXPECT_LT(e32, 1e-5 * r.scale) << c.bits << "/" << c.group;
    if (c.int8_path) {
      // int8 x: visibly coarser than f32, and as large as x's rounding predicts (sigma):
      // no output beyond 6 sigma, and the root mean square of err / sigma near 1 over the
      // 74 outputs (its sampling spread is ~8%). Rounding by truncation, or a q_offset term
      // from the rounded sum of x, gives ~2; a lost scale, far more.
      EXPECT_LT(e32, e8) << c.bits << "/" << c.group;
      EXPECT_GT(e8, 1e-4 * r.scale) << c.bits << "/" << c.group;
      double z2 = 0, zmax = 0;
      for (size_t i = 0; i < r.ref.size(); ++i) {
        const double z = (r.int8[i] - r.ref[i]) / r.sigma[i];
        z2 += z * z;
        zmax = std::max(zmax, std::fabs(z));
      }
      const double rms = std::sqrt(z2 / static_cast<double>(r.ref.size()));
      EXPECT_LT(zmax, 6.0) << c.bits << "/" << c.group;
      EXPECT_GT(rms, 0.6) << c.bits << "/" << c.group;
      EXPECT_LT(rms, 1.4) << c.bits << "/" << c.group;
    } else {
      EXPECT_EQ(r.int8, r.f32) << "shape without an int8 kernel " << c.bits << "/" << c.group;
    }
  }
}

TEST(NeonQuantized, Int8RequestKeepsF32WithoutSdot) {
  LMX_NEON_OR_SKIP(f);
  uint32_t seed = 80;
  for (const Case& c : kCases) {
    const Outputs r = run_case(c, testing::without_neon_extensions(f), seed += 2);
    EXPECT_LT(max_err(r.f32, r.ref), 1e-5 * r.scale) << c.bits << "/" << c.group;
    EXPECT_EQ(r.int8, r.f32) << c.bits << "/" << c.group;
  }
}

}  // namespace
}  // namespace lmx::cpu
