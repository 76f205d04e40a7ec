// Dense matmul_nt and the strided GEMM: every fast path against the scalar reference on
// random inputs, odd sizes, padded strides, all weight dtypes, both the AVX2 and scalar
// dispatch.
#include "lmx/backend/cpu/matmul.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "cpu_tiers.h"
#include "lmx/backend/cpu/cpu_features.h"
#include "lmx/base/thread_pool.h"
#include "lmx/core/half.h"

namespace lmx::cpu {
namespace {

std::vector<float> random_vec(size_t n, uint32_t seed, float lo = -1.0f, float hi = 1.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (auto& e : v) e = d(rng);
  return v;
}

// Restores the detected CPU features after a test that forces the scalar path.
struct FeatureGuard {
  CpuFeatures saved = cpu_features();
  ~FeatureGuard() { set_cpu_features_for_testing(saved); }
};

// scalar and every SIMD tier this machine supports (avx2, avx_vnni, avx512).
std::vector<CpuFeatures> paths() { return testing::available_tiers(); }

// The AVX-512 bf16 GEMM with AVX512_BF16 and bf16_dot (AMD's default; m >= 2) rounds x: each
// product then carries x's rounding, at most 2^-8 relative (8 significant bits, round to
// nearest), on top of the f32 summation's error.
bool rounds_x_to_bf16(const CpuFeatures& f, Dtype dt, int64_t m) {
  return f.use_avx512_bf16() && dt == Dtype::bf16 && m >= 2;
}
double x_rounding_bound(const CpuFeatures& f, Dtype dt, int64_t m) {
  return rounds_x_to_bf16(f, dt, m) ? 1.0 / 256.0 : 0.0;
}

// Weight storage of a dtype, with the f32 values it represents exactly.
struct Weights {
  std::vector<uint16_t> h;
  std::vector<float> f;  // exact values (what the reference sees too)
  const void* data(Dtype dt) const {
    return dt == Dtype::f32 ? static_cast<const void*>(f.data()) : h.data();
  }
};

Weights make_weights(size_t count, Dtype dt, uint32_t seed) {
  Weights w;
  w.f = random_vec(count, seed);
  if (dt != Dtype::f32) {
    w.h.resize(count);
    for (size_t i = 0; i < count; ++i) {
      w.h[i] = dt == Dtype::f16 ? f32_to_f16(w.f[i]) : f32_to_bf16(w.f[i]);
      w.f[i] = dt == Dtype::f16 ? f16_to_f32(w.h[i]) : bf16_to_f32(w.h[i]);
    }
  }
  return w;
}

class MatmulNt : public ::testing::TestWithParam<Dtype> {};

TEST_P(MatmulNt, MatchesReferenceOnOddShapesAndStrides) {
  const Dtype dt = GetParam();
  FeatureGuard guard;
  ThreadPool pool(2);
  struct Shape {
    int64_t m, n, k;
  };
  const Shape shapes[] = {{1, 1, 1},       {1, 5, 7},        {1, 33, 67},    {1, 131, 300},
                          {2, 17, 9},      {3, 31, 65},      {5, 64, 256},   {7, 19, 513},
                          {17, 40, 33},    {16, 47, 260},    {1, 257, 2048}, {512, 35, 70},
                          {100, 150, 600}, {13, 1037, 1100}, {9, 23, 4200},
                          // Decode on rows over 4 KiB in 16-bit (the long-row matvec with its
                          // prefetched lines, a partial line and a tail of 4 inputs).
                          {1, 41, 2100}};
  uint32_t seed = 1;
  for (const auto& features : paths()) {
    set_cpu_features_for_testing(features);
    for (const Shape& s : shapes) {
      const int64_t ldx = s.k + 3, ldw = s.k + 5, ldy = s.n + 2;
      const auto x = random_vec(static_cast<size_t>(s.m * ldx), seed++);
      const Weights w = make_weights(static_cast<size_t>(s.n * ldw), dt, seed++);
      const DenseWeightView view{w.data(dt), dt, s.n, s.k, ldw};
      std::vector<float> y(static_cast<size_t>(s.m * ldy), 777.0f), ref(y);
      matmul_nt(x.data(), ldx, view, y.data(), ldy, s.m, &pool);
      matmul_nt_reference(x.data(), ldx, view, ref.data(), ldy, s.m);
      for (int64_t i = 0; i < s.m; ++i) {
        for (int64_t j = 0; j < s.n; ++j) {
          double mag = 0;
          for (int64_t p = 0; p < s.k; ++p) mag += std::fabs(x[i * ldx + p] * w.f[j * ldw + p]);
          const float got = y[i * ldy + j], want = ref[i * ldy + j];
          ASSERT_NEAR(
              got, want,
              (x_rounding_bound(features, dt, s.m) + 1e-6 * (1.0 + s.k / 256.0)) * mag + 1e-30)
              << cpu_tier_name(features.tier()) << " m=" << s.m << " n=" << s.n << " k=" << s.k
              << " at " << i << "," << j;
        }
        for (int64_t j = s.n; j < ldy; ++j) ASSERT_EQ(y[i * ldy + j], 777.0f) << "wrote past n";
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Dtypes,
                         MatmulNt,
                         ::testing::Values(Dtype::f32, Dtype::f16, Dtype::bf16),
                         [](const auto& info) { return std::string(dtype_name(info.param)); });

TEST(MatmulNtEveryM, OneToSeventeenAllDtypes) {
  FeatureGuard guard;
  ThreadPool pool(2);
  uint32_t seed = 900;
  for (const auto& features : paths()) {
    set_cpu_features_for_testing(features);
    for (Dtype dt : {Dtype::f32, Dtype::f16, Dtype::bf16}) {
      for (int64_t m = 1; m <= 17; ++m) {
        const int64_t n = 37, k = 45, ldx = k + 2, ldw = k + 1, ldy = n + 3;
        const auto x = random_vec(static_cast<size_t>(m * ldx), seed++);
        const Weights w = make_weights(static_cast<size_t>(n * ldw), dt, seed++);
        const DenseWeightView view{w.data(dt), dt, n, k, ldw};
        std::vector<float> y(static_cast<size_t>(m * ldy)), ref(y.size());
        matmul_nt(x.data(), ldx, view, y.data(), ldy, m, &pool);
        matmul_nt_reference(x.data(), ldx, view, ref.data(), ldy, m);
        for (int64_t i = 0; i < m; ++i)
          for (int64_t j = 0; j < n; ++j) {
            double mag = 0;
            for (int64_t p = 0; p < k; ++p) mag += std::fabs(x[i * ldx + p] * w.f[j * ldw + p]);
            ASSERT_NEAR(y[i * ldy + j], ref[i * ldy + j],
                        (x_rounding_bound(features, dt, m) + 2e-6) * mag + 1e-30)
                << cpu_tier_name(features.tier()) << " m=" << m;
          }
      }
    }
  }
}

// The vdpbf16ps path (AVX-512 with AVX512_BF16 and bf16_dot, AMD's default; bf16 weights, m >= 2):
// the same as the reference with x first rounded to bf16 as f32_to_bf16 rounds (to nearest
// even), up to the f32 summation's error; and visibly not the exact-x result, so the path
// really runs.
TEST(MatmulNtBf16Dot, RoundsXToBf16ThenSumsInF32) {
  CpuFeatures f = detected_cpu_features();
  f.bf16_dot = true;  // as LMX_BF16_DOT=1 (AMD's default)
  if (!f.use_avx512_bf16()) GTEST_SKIP() << "this CPU lacks AVX-512 with AVX512_BF16";
  FeatureGuard guard;
  set_cpu_features_for_testing(f);
  ThreadPool pool(2);
  struct Shape {
    int64_t m, n, k;
  };
  const Shape shapes[] = {{2, 17, 9},    {13, 33, 1},     {12, 32, 64},
                          {25, 70, 301}, {7, 1037, 2050}, {30, 40, 4097}};
  uint32_t seed = 4000;
  int64_t differs = 0;
  for (const Shape& s : shapes) {
    const int64_t ldx = s.k + 3, ldw = s.k + 1, ldy = s.n + 5;
    const auto x = random_vec(static_cast<size_t>(s.m * ldx), seed++);
    const Weights w = make_weights(static_cast<size_t>(s.n * ldw), Dtype::bf16, seed++);
    const DenseWeightView view{w.data(Dtype::bf16), Dtype::bf16, s.n, s.k, ldw};
    std::vector<float> y(static_cast<size_t>(s.m * ldy), 777.0f);
    matmul_nt(x.data(), ldx, view, y.data(), ldy, s.m, &pool);
    for (int64_t i = 0; i < s.m; ++i) {
      for (int64_t j = 0; j < s.n; ++j) {
        double rounded = 0, exact = 0, mag = 0;
        for (int64_t p = 0; p < s.k; ++p) {
          const double xv = x[i * ldx + p], wv = w.f[j * ldw + p];
          rounded += static_cast<double>(bf16_to_f32(f32_to_bf16(x[i * ldx + p]))) * wv;
          exact += xv * wv;
          mag += std::fabs(xv * wv);
        }
        const double tol = 1e-6 * mag * (1.0 + s.k / 256.0) + 1e-30;
        ASSERT_NEAR(y[i * ldy + j], rounded, tol)
            << "m=" << s.m << " n=" << s.n << " k=" << s.k << " at " << i << "," << j;
        differs += std::fabs(y[i * ldy + j] - exact) > tol ? 1 : 0;
      }
      for (int64_t j = s.n; j < ldy; ++j) ASSERT_EQ(y[i * ldy + j], 777.0f) << "wrote past n";
    }
  }
  EXPECT_GT(differs, 100) << "x does not look rounded to bf16";
}

TEST(GemmF32, StridedTransposedBatchedAlphaBeta) {
  FeatureGuard guard;
  ThreadPool pool(2);
  struct Case {
    int64_t batch, m, n, k;
    bool ta, tb;
    float alpha, beta;
  };
  const Case cases[] = {
      {1, 1, 1, 1, false, false, 1.0f, 0.0f},       {1, 7, 13, 5, false, false, 1.0f, 0.0f},
      {3, 17, 33, 64, false, true, 0.125f, 0.0f},   {2, 13, 40, 31, true, false, 2.0f, 0.5f},
      {1, 64, 300, 129, true, true, -1.0f, 1.0f},   {4, 9, 64, 100, false, true, 1.0f, 0.0f},
      {1, 130, 260, 520, false, false, 1.0f, 0.0f}, {1, 512, 48, 64, false, true, 1.0f, 0.25f},
      {5, 1, 77, 64, false, false, 1.0f, 0.0f}};
  uint32_t seed = 100;
  for (const auto& features : paths()) {
    set_cpu_features_for_testing(features);
    for (const Case& c : cases) {
      // Row-major storage with padding; a transposed operand swaps its strides.
      const int64_t a_rows = c.ta ? c.k : c.m, a_cols = c.ta ? c.m : c.k;
      const int64_t b_rows = c.tb ? c.n : c.k, b_cols = c.tb ? c.k : c.n;
      const int64_t lda = a_cols + 1, ldb = b_cols + 3, ldc = c.n + 2;
      const int64_t a_bs = a_rows * lda + 5, b_bs = b_rows * ldb + 1, c_bs = c.m * ldc + 7;
      const auto a = random_vec(static_cast<size_t>(c.batch * a_bs), seed++);
      const auto b = random_vec(static_cast<size_t>(c.batch * b_bs), seed++);
      std::vector<float> cm = random_vec(static_cast<size_t>(c.batch * c_bs), seed++);
      if (c.beta == 0.0f)
        for (auto& e : cm) e = std::nanf("");  // beta == 0 must not read C
      std::vector<float> ref = cm;
      GemmArgs g;
      g.m = c.m, g.n = c.n, g.k = c.k, g.alpha = c.alpha, g.beta = c.beta;
      g.a = a.data(), g.a_rs = c.ta ? 1 : lda, g.a_cs = c.ta ? lda : 1;
      g.b = b.data(), g.b_rs = c.tb ? 1 : ldb, g.b_cs = c.tb ? ldb : 1;
      g.c = cm.data(), g.c_rs = ldc, g.c_cs = 1;
      g.batch = c.batch, g.a_bs = a_bs, g.b_bs = b_bs, g.c_bs = c_bs;
      gemm_f32(g, &pool);
      g.c = ref.data();
      gemm_f32_reference(g);
      for (int64_t bi = 0; bi < c.batch; ++bi)
        for (int64_t i = 0; i < c.m; ++i)
          for (int64_t j = 0; j < c.n; ++j) {
            double mag = 0;
            for (int64_t p = 0; p < c.k; ++p)
              mag += std::fabs(a[bi * a_bs + i * g.a_rs + p * g.a_cs] *
                               b[bi * b_bs + p * g.b_rs + j * g.b_cs]);
            mag = mag * std::fabs(c.alpha) + std::fabs(ref[bi * c_bs + i * ldc + j]);
            const size_t at = static_cast<size_t>(bi * c_bs + i * ldc + j);
            ASSERT_NEAR(cm[at], ref[at], 1e-6 * mag * (1.0 + c.k / 256.0) + 1e-30)
                << "avx2=" << features.use_avx2() << " case m=" << c.m << " n=" << c.n
                << " k=" << c.k;
          }
    }
  }
}

TEST(GemmF32, ColumnStridedOutput) {
  FeatureGuard guard;
  ThreadPool pool(2);
  for (const auto& features : paths()) {
    set_cpu_features_for_testing(features);
    const int64_t m = 11, n = 23, k = 37;
    const auto a = random_vec(static_cast<size_t>(m * k), 5),
               b = random_vec(static_cast<size_t>(k * n), 6);
    // C stored transposed: C(i, j) at j * m + i.
    std::vector<float> c(static_cast<size_t>(m * n)), ref(c.size());
    GemmArgs g;
    g.m = m, g.n = n, g.k = k, g.a = a.data(), g.a_rs = k, g.b = b.data(), g.b_rs = n;
    g.c = c.data(), g.c_rs = 1, g.c_cs = m;
    gemm_f32(g, &pool);
    g.c = ref.data();
    gemm_f32_reference(g);
    for (size_t i = 0; i < c.size(); ++i) ASSERT_NEAR(c[i], ref[i], 1e-5f) << i;
  }
}

}  // namespace
}  // namespace lmx::cpu
