// One suite per CPU kernel tier (scalar, avx2, avx_vnni, avx512): each tier's prefill GEMMs
// against the scalar reference on odd shapes and strides, run where the CPU has the tier and
// reported as skipped (with what is missing) where it does not. The per-kernel tests
// (matmul_test, quantized_test, ...) also loop over every available tier.
#include "cpu_tiers.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "lmx/backend/cpu/matmul.h"
#include "lmx/backend/cpu/quantized.h"
#include "lmx/base/thread_pool.h"
#include "lmx/core/half.h"

namespace lmx::cpu {
namespace {

using testing::ScopedCpuFeatures;

std::vector<float> random_vec(size_t n, uint32_t seed, float lo = -1.0f, float hi = 1.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (auto& e : v) e = d(rng);
  return v;
}

class CpuTierTest : public ::testing::TestWithParam<CpuTier> {
 protected:
  void SetUp() override {
    if (!testing::tier_features(GetParam(), features_))
      GTEST_SKIP() << "this CPU lacks the " << cpu_tier_name(GetParam()) << " tier (needs "
                   << testing::tier_requirement(GetParam()) << ")";
  }
  CpuFeatures features_;
};

TEST_P(CpuTierTest, SelectsItsTierAndNamesIt) {
  ScopedCpuFeatures scope(features_);
  EXPECT_EQ(cpu_features().tier(), GetParam());
  EXPECT_EQ(std::string(active_cpu_tier_description()).rfind(cpu_tier_name(GetParam()), 0), 0u)
      << active_cpu_tier_description();
}

// Value j of row r in the MLX bit stream (lowest bits first).
uint32_t q_of(const QuantView& v, int64_t r, int64_t j) {
  const auto* bytes = reinterpret_cast<const uint8_t*>(v.w + r * v.w_row_stride());
  const int64_t bit = j * v.bits;
  const uint32_t lo = bytes[bit >> 3], hi = (bit & 7) + v.bits > 8 ? bytes[(bit >> 3) + 1] : 0;
  return ((lo | hi << 8) >> (bit & 7)) & ((1u << v.bits) - 1u);
}

// A random MLX-quantized weight [n, k] (f32 source quantized the MLX way, bf16 scales).
struct QuantWeight {
  std::vector<uint32_t> w;
  std::vector<uint16_t> s, b;
  QuantView view;
  QuantWeight(int64_t n, int64_t k, int bits, int group, uint32_t seed) {
    const auto src = random_vec(static_cast<size_t>(n * k), seed, -0.3f, 0.3f);
    w.resize(static_cast<size_t>(n * k * bits / 32));
    s.resize(static_cast<size_t>(n * k / group));
    b.resize(s.size());
    quantize_affine(src.data(), n, k, bits, group, w.data(), s.data(), b.data(), Dtype::bf16);
    view = QuantView{w.data(), s.data(), b.data(), Dtype::bf16, n, k, bits, group};
  }
};

// The integer-activation GEMM against the f32 reference: within the rounding of x to
// int16 (<= amax / 65534 per element; the models' default for prefill) or int8 (amax / 254;
// vpdpbusd on the AVX-512 tier, int16 below it) on every shape, with tiles cut at odd rows
// and columns and padded strides; int16 gives the same bits on every SIMD tier while k fits
// one k block (exact integer sums, the same f32 epilogue).
void check_quantized_gemm(CpuTier tier, const CpuFeatures& features, ActivationPrecision prec) {
  ThreadPool pool(2);
  struct Shape {
    int64_t m, n, k;
    int bits, group;
  };
  const Shape shapes[] = {{4, 1, 64, 4, 64},     {5, 33, 128, 4, 32},    {7, 17, 192, 8, 64},
                          {13, 95, 896, 4, 64},  {29, 70, 1664, 8, 128}, {6, 32, 3200, 4, 64},
                          {37, 129, 256, 3, 64}, {100, 47, 512, 8, 32},  {64, 1100, 128, 4, 128},
                          // m >= kMinGemmRows: the GEMM, 4-bit in groups of 32 and 64 (k = 352:
                          // a half 64-input unit at the end), 8-bit in groups of 64
                          {66, 45, 352, 4, 32},  {65, 37, 384, 4, 64},   {70, 19, 448, 8, 64}};
  // int8 x: vpdpbusd on AVX-512, sdot on NEON (NEON keeps f32 x for int16, inside any bound).
  const bool int8_x = features.use_avx512() || features.use_neon_dotprod();
  const double levels = prec == ActivationPrecision::int8 && int8_x ? 254 : 65534;
  uint32_t seed = 7;
  for (const Shape& sh : shapes) {
    const QuantWeight qw(sh.n, sh.k, sh.bits, sh.group, seed++);
    const PackedQuantWeight packed = pack_quantized(qw.view);
    const int64_t ldx = sh.k + 3, ldy = sh.n + 5;
    const auto x = random_vec(static_cast<size_t>(sh.m * ldx), seed++);
    std::vector<float> y(static_cast<size_t>(sh.m * ldy), 555.0f), ref(y), avx2(y);
    QuantMatmulOptions opt;
    opt.activations = prec;
    {
      ScopedCpuFeatures scope(features);
      quantized_matmul(x.data(), ldx, packed, y.data(), ldy, sh.m, opt, &pool);
    }
    quantized_matmul_reference(x.data(), ldx, qw.view, ref.data(), ldy, sh.m);
    CpuFeatures f2;
    // Bit for bit while k fits one k block of both kernels (AVX2 1536 inputs, AVX-512 2048);
    // beyond that the f32 partial sums of the blocks are split at other places.
    const bool simd = tier != CpuTier::scalar && prec == ActivationPrecision::int16 &&
                      sh.k <= 1536 && testing::tier_features(CpuTier::avx2, f2);
    if (simd) {
      ScopedCpuFeatures scope(f2);
      quantized_matmul(x.data(), ldx, packed, avx2.data(), ldy, sh.m, opt, &pool);
    }
    for (int64_t i = 0; i < sh.m; ++i) {
      for (int64_t r = 0; r < sh.n; ++r) {
        double mag = 0, xerr = 0;
        for (int64_t g = 0; g < sh.k / sh.group; ++g) {
          double amax = 0, wsum = 0;
          for (int64_t j = g * sh.group; j < (g + 1) * sh.group; ++j) {
            const double xv = std::fabs(x[static_cast<size_t>(i * ldx + j)]);
            const int64_t gi = r * (sh.k / sh.group) + g;
            const double q = static_cast<double>(q_of(qw.view, r, j));
            const double wt = std::fabs(bf16_to_f32(qw.s[static_cast<size_t>(gi)])) *
                                  (q + (sh.bits == 8 ? 128 : 0)) +
                              std::fabs(bf16_to_f32(qw.b[static_cast<size_t>(gi)]));
            mag += xv * wt;
            amax = std::max(amax, xv);
            wsum += wt;
          }
          xerr += amax / levels * wsum;
        }
        const size_t at = static_cast<size_t>(i * ldy + r);
        const double tol = 1e-6 * mag * (1.0 + sh.k / 256.0) + 1.01 * xerr + 1e-30;
        ASSERT_NEAR(y[at], ref[at], tol)
            << cpu_tier_name(tier) << " m=" << sh.m << " n=" << sh.n << " k=" << sh.k
            << " bits=" << sh.bits << " group=" << sh.group << " at " << i << "," << r;
        if (simd) {
          ASSERT_EQ(y[at], avx2[at]) << "differs from avx2 at " << i << "," << r;
        }
      }
      for (int64_t r = sh.n; r < ldy; ++r)
        ASSERT_EQ(y[static_cast<size_t>(i * ldy + r)], 555.0f) << "wrote past n";
    }
  }
}

TEST_P(CpuTierTest, QuantizedGemmInt16MatchesReference) {
  check_quantized_gemm(GetParam(), features_, ActivationPrecision::int16);
}

TEST_P(CpuTierTest, QuantizedGemmInt8MatchesReference) {
  check_quantized_gemm(GetParam(), features_, ActivationPrecision::int8);
}

// Dense f32 weights (f32 models' prefill, the embedders) against the reference at f32
// tolerance, and every SIMD tier bit for bit equal to the AVX2 GEMM (same k blocks, same
// fused multiply-adds in the same order), k past one block (1024) included.
TEST_P(CpuTierTest, DenseF32GemmMatchesReferenceAndAvx2) {
  ThreadPool pool(2);
  struct Shape {
    int64_t m, n, k;
  };
  const Shape shapes[] = {{2, 3, 5},      {4, 33, 67},   {7, 31, 129},   {13, 100, 300},
                          {25, 47, 513},  {64, 65, 2049}, {6, 1030, 96}, {30, 384, 1536},
                          {100, 17, 4100}, {203, 96, 384}};
  uint32_t seed = 300;
  CpuFeatures avx2_features;
  const bool simd = GetParam() != CpuTier::scalar && GetParam() != CpuTier::neon &&
                    testing::tier_features(CpuTier::avx2, avx2_features);
  for (const Shape& sh : shapes) {
    const int64_t ldx = sh.k + 3, ldw = sh.k + 5, ldy = sh.n + 2;
    const auto x = random_vec(static_cast<size_t>(sh.m * ldx), seed++);
    const auto w = random_vec(static_cast<size_t>(sh.n * ldw), seed++);
    const DenseWeightView view{w.data(), Dtype::f32, sh.n, sh.k, ldw};
    std::vector<float> y(static_cast<size_t>(sh.m * ldy), 777.0f), ref(y), avx2(y);
    {
      ScopedCpuFeatures scope(features_);
      matmul_nt(x.data(), ldx, view, y.data(), ldy, sh.m, &pool);
    }
    if (simd) {
      ScopedCpuFeatures scope(avx2_features);
      matmul_nt(x.data(), ldx, view, avx2.data(), ldy, sh.m, &pool);
    }
    matmul_nt_reference(x.data(), ldx, view, ref.data(), ldy, sh.m);
    for (int64_t i = 0; i < sh.m; ++i) {
      for (int64_t j = 0; j < sh.n; ++j) {
        double mag = 0;
        for (int64_t p = 0; p < sh.k; ++p)
          mag += std::fabs(x[static_cast<size_t>(i * ldx + p)] * w[static_cast<size_t>(j * ldw + p)]);
        const size_t at = static_cast<size_t>(i * ldy + j);
        ASSERT_NEAR(y[at], ref[at], 1e-6 * mag * (1.0 + sh.k / 256.0) + 1e-30)
            << cpu_tier_name(GetParam()) << " m=" << sh.m << " n=" << sh.n << " k=" << sh.k
            << " at " << i << "," << j;
        if (simd) {
          ASSERT_EQ(y[at], avx2[at]) << "differs from avx2, m=" << sh.m << " k=" << sh.k;
        }
      }
      for (int64_t j = sh.n; j < ldy; ++j)
        ASSERT_EQ(y[static_cast<size_t>(i * ldy + j)], 777.0f) << "wrote past n";
    }
  }
}

// Dense bf16 weights (the bf16 models' prefill) against the reference at f32 tolerance.
TEST_P(CpuTierTest, DenseBf16GemmMatchesReference) {
  ThreadPool pool(2);
  struct Shape {
    int64_t m, n, k;
  };
  const Shape shapes[] = {{2, 3, 5},     {4, 33, 67},    {7, 31, 129},  {13, 100, 300},
                          {25, 47, 513}, {64, 65, 2049}, {6, 1030, 96}, {100, 17, 4100}};
  uint32_t seed = 100;
  for (const Shape& sh : shapes) {
    const int64_t ldx = sh.k + 3, ldw = sh.k + 5, ldy = sh.n + 2;
    const auto x = random_vec(static_cast<size_t>(sh.m * ldx), seed++);
    auto wf = random_vec(static_cast<size_t>(sh.n * ldw), seed++);
    std::vector<uint16_t> wh(wf.size());
    for (size_t i = 0; i < wf.size(); ++i) {
      wh[i] = f32_to_bf16(wf[i]);
      wf[i] = bf16_to_f32(wh[i]);
    }
    const DenseWeightView view{wh.data(), Dtype::bf16, sh.n, sh.k, ldw};
    // With AVX512_BF16 the tier runs twice: the exact f32 FMA path (LMX_BF16_DOT=0; Intel's
    // default), then vdpbf16ps (AMD's default), whose reference is the same sums of x
    // rounded to bf16 (the path's one difference).
    std::vector<CpuFeatures> paths{features_};
    paths.front().bf16_dot = false;
    if (features_.use_avx512() && features_.avx512_bf16) {
      paths.push_back(paths.front());
      paths.back().bf16_dot = true;
    }
    for (const CpuFeatures& path : paths) {
      std::vector<float> xr(x);
      if (path.use_avx512_bf16())
        for (float& v : xr) v = bf16_to_f32(f32_to_bf16(v));
      std::vector<float> y(static_cast<size_t>(sh.m * ldy), 777.0f), ref(y);
      {
        ScopedCpuFeatures scope(path);
        matmul_nt(x.data(), ldx, view, y.data(), ldy, sh.m, &pool);
      }
      matmul_nt_reference(xr.data(), ldx, view, ref.data(), ldy, sh.m);
      for (int64_t i = 0; i < sh.m; ++i) {
        for (int64_t j = 0; j < sh.n; ++j) {
          double mag = 0;
          for (int64_t p = 0; p < sh.k; ++p)
            mag += std::fabs(x[static_cast<size_t>(i * ldx + p)] *
                             wf[static_cast<size_t>(j * ldw + p)]);
          const size_t at = static_cast<size_t>(i * ldy + j);
          ASSERT_NEAR(y[at], ref[at], 1e-6 * mag * (1.0 + sh.k / 256.0) + 1e-30)
              << cpu_tier_name(GetParam()) << (path.use_avx512_bf16() ? " (vdpbf16ps)" : "")
              << " m=" << sh.m << " n=" << sh.n << " k=" << sh.k << " at " << i << "," << j;
        }
        for (int64_t j = sh.n; j < ldy; ++j)
          ASSERT_EQ(y[static_cast<size_t>(i * ldy + j)], 777.0f) << "wrote past n";
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Tiers,
                         CpuTierTest,
                         ::testing::ValuesIn(testing::kAllTiers),
                         [](const auto& info) { return std::string(cpu_tier_name(info.param)); });

}  // namespace
}  // namespace lmx::cpu
