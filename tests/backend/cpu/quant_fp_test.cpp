// MLX's mxfp4 / mxfp8 / nvfp4 modes: every element and scale code against the OCP MX
// v1.0 and NVIDIA NVFP4 definitions (with MLX's readings of the codes the specs call NaN),
// dequantization bit for bit, quantization against a transcription of mlx.core.quantize's
// CPU path (argmin over the e2m1 table, round(log2) for e8m0, nearest-even e4m3 found by
// search), and the matmul paths of every CPU tier against a double-precision product.
#include "lmx/backend/cpu/quant_fp.h"

#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "cpu_tiers.h"
#include "lmx/backend/cpu/cpu_features.h"
#include "lmx/core/quantized_weight.h"

namespace lmx::cpu {
namespace {

struct FeatureGuard {
  CpuFeatures saved = cpu_features();
  ~FeatureGuard() { set_cpu_features_for_testing(saved); }
};

// OCP MX v1.0, table of FP4 E2M1 values, in code order.
const float kE2M1[16] = {0.0f,  0.5f,  1.0f,  1.5f,  2.0f,  3.0f,  4.0f,  6.0f,
                         -0.0f, -0.5f, -1.0f, -1.5f, -2.0f, -3.0f, -4.0f, -6.0f};

// E4M3 from its fields: bias 7, subnormals 2^-6 * m/8; MLX reads S.1111.111 as 480.
double e4m3_spec(int code) {
  const int e = (code >> 3) & 15, m = code & 7;
  const double mag = e == 0 ? std::ldexp(m / 8.0, -6) : std::ldexp(1.0 + m / 8.0, e - 7);
  return (code & 0x80) ? -mag : mag;
}

// E8M0: 2^(code - 127); MLX reads 0xFF (the spec's NaN) as 2^128 = +inf in f32.
double e8m0_spec(int code) { return std::ldexp(1.0, code - 127); }

bool same_float(float a, float b) {
  if (std::isnan(a) || std::isnan(b)) return std::isnan(a) && std::isnan(b);
  return std::bit_cast<uint32_t>(a) == std::bit_cast<uint32_t>(b);
}

TEST(QuantFp, EveryE2M1Code) {
  for (int c = 0; c < 16; ++c) {
    EXPECT_TRUE(same_float(fp4_e2m1_value(static_cast<uint8_t>(c)), kE2M1[c])) << "code " << c;
  }
  EXPECT_TRUE(std::signbit(fp4_e2m1_value(8)));
}

TEST(QuantFp, EveryE4M3Code) {
  for (int c = 0; c < 256; ++c) {
    EXPECT_TRUE(same_float(fp8_e4m3_value(static_cast<uint8_t>(c)), static_cast<float>(e4m3_spec(c))))
        << "code " << c;
  }
  // The edges by value.
  EXPECT_EQ(fp8_e4m3_value(0x01), 0x1p-9f);   // smallest subnormal
  EXPECT_EQ(fp8_e4m3_value(0x07), 7 * 0x1p-9f);
  EXPECT_EQ(fp8_e4m3_value(0x08), 0x1p-6f);   // smallest normal
  EXPECT_EQ(fp8_e4m3_value(0x7e), 448.0f);    // largest finite
  EXPECT_EQ(fp8_e4m3_value(0x7f), 480.0f);    // NaN in OCP; MLX decodes it as a number
  EXPECT_EQ(fp8_e4m3_value(0xff), -480.0f);
  EXPECT_TRUE(std::signbit(fp8_e4m3_value(0x80)));
}

TEST(QuantFp, EveryE8M0Code) {
  for (int c = 0; c < 256; ++c) {
    EXPECT_TRUE(same_float(e8m0_value(static_cast<uint8_t>(c)), static_cast<float>(e8m0_spec(c))))
        << "code " << c;
  }
  EXPECT_EQ(e8m0_value(0), 0x1p-127f);  // an f32 subnormal, not zero
  EXPECT_EQ(e8m0_value(127), 1.0f);
  EXPECT_EQ(e8m0_value(254), 0x1p127f);
  EXPECT_EQ(e8m0_value(255), std::numeric_limits<float>::infinity());
}

struct Mode {
  QuantMode mode;
  int bits, group;
};
const Mode kModes[] = {{QuantMode::mxfp4, 4, 32}, {QuantMode::mxfp8, 8, 32}, {QuantMode::nvfp4, 4, 16}};

// A random matrix in a mode's layout whose codes cover every element code and the edge
// scale codes (the largest / smallest / NaN-in-the-spec ones).
struct Packed {
  int64_t n, k;
  std::vector<uint32_t> w;
  std::vector<uint8_t> scales;
  std::vector<uint32_t> codes;  // [n, k]
  QuantView view(const Mode& m) const {
    QuantView v;
    v.w = w.data();
    v.scales = scales.data();
    v.scale_dtype = Dtype::u8;
    v.mode = m.mode;
    v.n = n;
    v.k = k;
    v.bits = m.bits;
    v.group_size = m.group;
    return v;
  }
};

Packed random_packed(const Mode& m, int64_t n, int64_t k, uint32_t seed, bool edge_scales) {
  std::mt19937 rng(seed);
  Packed p{n, k, std::vector<uint32_t>(static_cast<size_t>(n * k * m.bits / 32)),
           std::vector<uint8_t>(static_cast<size_t>(n * k / m.group)), std::vector<uint32_t>(static_cast<size_t>(n * k))};
  const uint32_t codes = 1u << m.bits;
  for (int64_t i = 0; i < n * k; ++i) {
    const uint32_t c = i < codes ? static_cast<uint32_t>(i) : rng() % codes;
    p.codes[i] = c;
    const int64_t r = i / k, j = i % k;
    p.w[(r * k + j) * m.bits / 32] |= c << ((j * m.bits) % 32);
  }
  const uint8_t edges[] = {0x00, 0x01, 0x7e, 0x7f, 0x80, 0xfe, 0xff, 0x08};
  for (size_t g = 0; g < p.scales.size(); ++g) {
    if (edge_scales && g < std::size(edges)) {
      p.scales[g] = edges[g];
    } else if (m.mode == QuantMode::nvfp4) {
      p.scales[g] = static_cast<uint8_t>(rng() % 0x7f);  // positive e4m3 scales
    } else {
      p.scales[g] = static_cast<uint8_t>(120 + rng() % 14);  // 2^-7 .. 2^6
    }
  }
  return p;
}

double scale_spec(const Mode& m, uint8_t code) {
  return m.mode == QuantMode::nvfp4 ? e4m3_spec(code) : e8m0_spec(code);
}
double element_spec(const Mode& m, uint32_t code) {
  return m.bits == 8 ? e4m3_spec(static_cast<int>(code)) : static_cast<double>(kE2M1[code]);
}

TEST(QuantFp, DequantizeEqualsTheDefinitionBitForBit) {
  for (const Mode& m : kModes) {
    const int64_t n = 9, k = 256;
    Packed p = random_packed(m, n, k, 7, true);
    std::vector<float> out(static_cast<size_t>(n * k));
    dequantize_fp(p.view(m), 0, n, out.data(), k);
    for (int64_t i = 0; i < n * k; ++i) {
      // MLX decodes the scale to f32 first (so e8m0 0xFF, 2^128, is +inf), then multiplies:
      // the exact product of two short floats rounded once to f32.
      const double s = static_cast<float>(scale_spec(m, p.scales[i / m.group]));
      const float want = static_cast<float>(s * element_spec(m, p.codes[i]));
      ASSERT_TRUE(same_float(out[i], want)) << quant_mode_name(m.mode) << " element " << i << ": " << out[i]
                                            << " vs " << want;
    }
  }
}

// --- quantize: a transcription of mlx.core.quantize's CPU path --------------------------

// Nearest e4m3 code to x among the finite codes MLX produces (|x| <= 448), ties to the
// even code, found by search; saturates past 448.
uint8_t e4m3_nearest(float x) {
  const double a = std::fabs(static_cast<double>(x));
  int best = 0;
  double best_d = std::numeric_limits<double>::infinity();
  for (int c = 0; c <= 0x7e; ++c) {
    const double d = std::fabs(a - e4m3_spec(c));
    if (d < best_d || (d == best_d && (c & 1) == 0)) best = c, best_d = d;
  }
  if (!(a <= 448.0)) best = 0x7e;
  return static_cast<uint8_t>(best | (std::signbit(x) ? 0x80 : 0));
}

// argmin over |v - table| with the table in code order; the first minimum wins.
uint32_t e2m1_argmin(float v) {
  uint32_t best = 0;
  float best_d = std::fabs(v - kE2M1[0]);
  for (uint32_t c = 1; c < 16; ++c) {
    const float d = std::fabs(v - kE2M1[c]);
    if (d < best_d) best = c, best_d = d;
  }
  return best;
}

void quantize_reference(const Mode& m, const std::vector<float>& w, int64_t n, int64_t k,
                        std::vector<uint32_t>& codes, std::vector<uint8_t>& scales) {
  codes.assign(static_cast<size_t>(n * k), 0);
  scales.assign(static_cast<size_t>(n * k / m.group), 0);
  for (int64_t g = 0; g < n * k / m.group; ++g) {
    float amax = 0.0f;
    for (int j = 0; j < m.group; ++j) amax = std::max(amax, std::fabs(w[g * m.group + j]));
    const float s = amax / (m.bits == 4 ? 6.0f : 448.0f);
    float divisor;
    if (m.mode == QuantMode::nvfp4) {
      scales[g] = e4m3_nearest(s);
      divisor = static_cast<float>(e4m3_spec(scales[g]));
    } else {
      const int e = s == 0.0f ? 0 : static_cast<int>(std::nearbyint(std::log2(s)));
      scales[g] = static_cast<uint8_t>(e + 127);
      divisor = std::pow(2.0f, static_cast<float>(e));
    }
    for (int j = 0; j < m.group; ++j) {
      const float v = w[g * m.group + j] / divisor;
      codes[g * m.group + j] = m.bits == 8 ? e4m3_nearest(v) : e2m1_argmin(v);
    }
  }
}

TEST(QuantFp, QuantizeMatchesMlx) {
  for (const Mode& m : kModes) {
    const int64_t n = 16, k = 128;
    std::mt19937 rng(3);
    std::normal_distribution<float> d(0.0f, 0.05f);
    std::vector<float> w(static_cast<size_t>(n * k));
    for (auto& v : w) v = d(rng);
    // Edge groups: all zero, values on e2m1 ties (0.25, 0.75, 2.5, 5 times a power of two),
    // a huge and a tiny range, negative zeros.
    for (int j = 0; j < m.group; ++j) w[j] = 0.0f;
    const float ties[] = {0.25f, 0.75f, 1.25f, 1.75f, 2.5f, 3.5f, 5.0f, 6.0f, -0.25f, -2.5f, -5.0f, -6.0f};
    for (int j = 0; j < m.group; ++j) w[m.group + j] = ties[j % std::size(ties)];
    for (int j = 0; j < m.group; ++j) w[2 * m.group + j] = (j % 2 ? 3e4f : -1e-30f) * static_cast<float>(j + 1);
    for (int j = 0; j < m.group; ++j) w[3 * m.group + j] = -0.0f;
    std::vector<uint32_t> want_codes;
    std::vector<uint8_t> want_scales;
    quantize_reference(m, w, n, k, want_codes, want_scales);
    std::vector<uint32_t> out(static_cast<size_t>(n * k * m.bits / 32));
    std::vector<uint8_t> scales(static_cast<size_t>(n * k / m.group));
    quantize_fp(w.data(), n, k, m.mode, out.data(), scales.data());
    EXPECT_EQ(scales, want_scales) << quant_mode_name(m.mode);
    for (int64_t i = 0; i < n * k; ++i) {
      const uint32_t got = (out[i * m.bits / 32] >> ((i * m.bits) % 32)) & ((1u << m.bits) - 1);
      ASSERT_EQ(got, want_codes[i]) << quant_mode_name(m.mode) << " element " << i << " (" << w[i] << ")";
    }
  }
}

TEST(QuantFp, E4M3EncodeRoundsToNearestEvenAndSaturates) {
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> exp(-12.0f, 9.5f);
  for (int i = 0; i < 20000; ++i) {
    const float x = std::pow(2.0f, exp(rng)) * (i % 2 ? -1.0f : 1.0f);
    ASSERT_EQ(fp8_e4m3_encode(x), e4m3_nearest(x)) << x;
  }
  for (int c = 0; c <= 0x7e; ++c) {  // every code and every midpoint between neighbours
    const float v = static_cast<float>(e4m3_spec(c));
    EXPECT_EQ(fp8_e4m3_encode(v), c);
    if (c < 0x7e) {
      const float mid = static_cast<float>((e4m3_spec(c) + e4m3_spec(c + 1)) / 2);
      EXPECT_EQ(fp8_e4m3_encode(mid), e4m3_nearest(mid)) << mid;
    }
  }
  EXPECT_EQ(fp8_e4m3_encode(1e9f), 0x7e);
  EXPECT_EQ(fp8_e4m3_encode(-std::numeric_limits<float>::infinity()), 0xfe);
  EXPECT_EQ(fp8_e4m3_encode(std::numeric_limits<float>::quiet_NaN()), 0x7e);
}

TEST(QuantFp, MatmulEveryTierMatchesTheDefinition) {
  FeatureGuard guard;
  for (const Mode& m : kModes) {
    const int64_t n = 37, k = 192;
    Packed p = random_packed(m, n, k, 5, false);
    std::vector<float> w(static_cast<size_t>(n * k));
    for (int64_t i = 0; i < n * k; ++i)
      w[i] = static_cast<float>(scale_spec(m, p.scales[i / m.group]) * element_spec(m, p.codes[i]));
    for (int64_t rows : {1, 3, 5, 17}) {
      std::mt19937 rng(static_cast<uint32_t>(rows));
      std::uniform_real_distribution<float> d(-1.0f, 1.0f);
      std::vector<float> x(static_cast<size_t>(rows * k));
      for (auto& v : x) v = d(rng);
      for (const CpuFeatures& f : testing::available_tiers()) {
        set_cpu_features_for_testing(f);
        std::vector<float> y(static_cast<size_t>(rows * n), -1.0f);
        quantized_matmul_fp(x.data(), k, p.view(m), y.data(), n, rows);
        for (int64_t i = 0; i < rows; ++i) {
          for (int64_t r = 0; r < n; ++r) {
            double want = 0, mag = 0;
            for (int64_t j = 0; j < k; ++j) {
              want += static_cast<double>(x[i * k + j]) * w[r * k + j];
              mag += std::fabs(static_cast<double>(x[i * k + j]) * w[r * k + j]);
            }
            ASSERT_NEAR(y[i * n + r], want, 1e-5 * mag + 1e-30)
                << quant_mode_name(m.mode) << " tier " << cpu_tier_name(f.tier()) << " rows " << rows;
          }
        }
      }
    }
  }
}

}  // namespace
}  // namespace lmx::cpu
