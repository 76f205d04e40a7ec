// MLX affine quantization: quantize against an independent transcription of MLX's
// formula (bit for bit), dequantize round trips, and every quantized matmul path (MLX
// layout, packed layout, f32 and int8 activations, scalar and AVX2 dispatch) against the
// scalar reference for every bits / group / scale-dtype combination.
#include "lmx/backend/cpu/quantized.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "lmx/backend/cpu/cpu_features.h"
#include "cpu_tiers.h"
#include "lmx/base/thread_pool.h"
#include "lmx/core/half.h"

namespace lmx::cpu {
namespace {

const int kBits[] = {2, 3, 4, 5, 6, 8};
const int kGroups[] = {32, 64, 128};
const Dtype kScaleDtypes[] = {Dtype::f32, Dtype::f16, Dtype::bf16};

struct FeatureGuard {
  CpuFeatures saved = cpu_features();
  ~FeatureGuard() { set_cpu_features_for_testing(saved); }
};

// scalar and every SIMD tier this machine supports (avx2, avx_vnni, avx512).
std::vector<CpuFeatures> paths() { return testing::available_tiers(); }

std::vector<float> random_vec(size_t n, uint32_t seed, float lo = -1.0f, float hi = 1.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (auto& e : v) e = d(rng);
  return v;
}

float to_dtype_and_back(float v, Dtype dt) {
  if (dt == Dtype::f16) return f16_to_f32(f32_to_f16(v));
  if (dt == Dtype::bf16) return bf16_to_f32(f32_to_bf16(v));
  return v;
}

// Scales/biases storage in a dtype.
struct Params {
  Dtype dt;
  std::vector<uint8_t> bytes;
  Params(Dtype d, size_t count) : dt(d), bytes(count * dtype_size(d)) {}
  void set(size_t i, float v) {
    if (dt == Dtype::f32) {
      std::memcpy(bytes.data() + 4 * i, &v, 4);
    } else {
      const uint16_t h = dt == Dtype::f16 ? f32_to_f16(v) : f32_to_bf16(v);
      std::memcpy(bytes.data() + 2 * i, &h, 2);
    }
  }
  float get(size_t i) const {
    if (dt == Dtype::f32) {
      float v;
      std::memcpy(&v, bytes.data() + 4 * i, 4);
      return v;
    }
    uint16_t h;
    std::memcpy(&h, bytes.data() + 2 * i, 2);
    return dt == Dtype::f16 ? f16_to_f32(h) : bf16_to_f32(h);
  }
};

// Bit j*bits + t of a row, read bit by bit (independent of the kernels' extraction).
uint32_t q_bitwise(const uint32_t* row, int bits, int64_t j) {
  uint32_t q = 0;
  for (int t = 0; t < bits; ++t) {
    const int64_t bit = j * bits + t;
    q |= ((row[bit / 32] >> (bit % 32)) & 1u) << t;
  }
  return q;
}

// MLX's quantize (mlx/backend/cpu/quantized.cpp), transcribed per element.
struct Expected {
  std::vector<uint32_t> q;            // [n, k]
  std::vector<float> scales, biases;  // f32, before rounding to the storage dtype
};
Expected mlx_quantize(const std::vector<float>& w, int64_t n, int64_t k, int bits, int group) {
  Expected e;
  e.q.resize(static_cast<size_t>(n * k));
  const float n_bins = static_cast<float>((1 << bits) - 1);
  for (int64_t r = 0; r < n; ++r)
    for (int64_t g = 0; g < k / group; ++g) {
      const float* src = w.data() + r * k + g * group;
      const float w_min = *std::min_element(src, src + group);
      const float w_max = *std::max_element(src, src + group);
      const bool mask = std::fabs(w_min) > std::fabs(w_max);
      float scale = std::max((w_max - w_min) / n_bins, 1e-7f);
      if (!mask) scale = -scale;
      const float edge = mask ? w_min : w_max;
      const float q0 = std::nearbyint(edge / scale);
      float bias = 0.0f;
      if (q0 != 0.0f) {
        scale = edge / q0;
        bias = edge;
      }
      for (int j = 0; j < group; ++j) {
        const float q = std::clamp(std::nearbyint((src[j] - bias) / scale), 0.0f, n_bins);
        e.q[static_cast<size_t>(r * k + g * group + j)] = static_cast<uint32_t>(q);
      }
      e.scales.push_back(scale);
      e.biases.push_back(bias);
    }
  return e;
}

TEST(QuantizeAffine, MatchesMlxFormulaBitForBit) {
  uint32_t seed = 7;
  for (int bits : kBits)
    for (int group : kGroups)
      for (Dtype dt : kScaleDtypes) {
        const int64_t n = 5, k = 3 * group;
        auto w = random_vec(static_cast<size_t>(n * k), seed++, -2.0f, 1.0f);
        // Edge cases: a constant group, an all-zero group, a group with one outlier.
        std::fill(w.begin(), w.begin() + group, 0.25f);
        std::fill(w.begin() + group, w.begin() + 2 * group, 0.0f);
        w[static_cast<size_t>(k + 5)] = 40.0f;
        std::vector<uint32_t> packed(static_cast<size_t>(n * k * bits / 32), 0xdeadbeef);
        Params scales(dt, static_cast<size_t>(n * k / group)),
            biases(dt, static_cast<size_t>(n * k / group));
        quantize_affine(w.data(), n, k, bits, group, packed.data(), scales.bytes.data(),
                        biases.bytes.data(), dt);
        const Expected e = mlx_quantize(w, n, k, bits, group);
        for (int64_t r = 0; r < n; ++r)
          for (int64_t j = 0; j < k; ++j)
            ASSERT_EQ(q_bitwise(packed.data() + r * k * bits / 32, bits, j),
                      e.q[static_cast<size_t>(r * k + j)])
                << "bits=" << bits << " group=" << group << " r=" << r << " j=" << j;
        for (size_t i = 0; i < e.scales.size(); ++i) {
          ASSERT_EQ(scales.get(i), to_dtype_and_back(e.scales[i], dt)) << i;
          ASSERT_EQ(biases.get(i), to_dtype_and_back(e.biases[i], dt)) << i;
        }
      }
}

TEST(QuantizeAffine, HandWorkedGroup) {
  // Values 0..31, 4 bits: |min| < |max| so the scale is negative and the max is the edge:
  // scale0 = -31/15, q0 = rint(31 / scale0) = -15, scale = 31 / -15, bias = 31,
  // q(v) = rint((v - 31) / scale).
  std::vector<float> w(32);
  for (int i = 0; i < 32; ++i) w[static_cast<size_t>(i)] = static_cast<float>(i);
  std::vector<uint32_t> packed(4);
  float scale = 0, bias = 0;
  quantize_affine(w.data(), 1, 32, 4, 32, packed.data(), &scale, &bias, Dtype::f32);
  EXPECT_EQ(scale, 31.0f / -15.0f);
  EXPECT_EQ(bias, 31.0f);
  EXPECT_EQ(packed[0] & 0xF, 15u);                                            // v = 0
  EXPECT_EQ((packed[3] >> 28) & 0xF, 0u);                                     // v = 31
  EXPECT_EQ((packed[1] >> 0) & 0xF, std::nearbyint((8.0f - 31.0f) / scale));  // v = 8
}

TEST(QuantizeAffine, KnownPackingOfThreeFiveSixBits) {
  // Element j occupies bits [j*bits, (j+1)*bits) of the row's little-endian bytes.
  for (int bits : {3, 5, 6}) {
    const int64_t k = 32;
    std::vector<float> w(k);
    // q = j % 2^bits with scale chosen so quantization is exact: values 0..(2^bits-1).
    for (int64_t j = 0; j < k; ++j) w[static_cast<size_t>(j)] = static_cast<float>(j % (1 << bits));
    w[0] = 0.0f;
    w[1] = static_cast<float>((1 << bits) - 1);
    std::vector<uint32_t> packed(static_cast<size_t>(k * bits / 32));
    float scale = 0, bias = 0;
    quantize_affine(w.data(), 1, k, bits, 32, packed.data(), &scale, &bias, Dtype::f32);
    std::vector<uint8_t> bytes(packed.size() * 4);
    std::memcpy(bytes.data(), packed.data(), bytes.size());
    for (int64_t j = 0; j < k; ++j) {
      uint32_t q = 0;
      for (int t = 0; t < bits; ++t) {
        const int64_t bit = j * bits + t;
        q |= static_cast<uint32_t>((bytes[static_cast<size_t>(bit / 8)] >> (bit % 8)) & 1) << t;
      }
      EXPECT_NEAR(scale * static_cast<float>(q) + bias, w[static_cast<size_t>(j)], 1e-4f)
          << bits << " " << j;
    }
  }
}

TEST(DequantizeAffine, RoundTripWithinHalfStepAndMatchesDirectFormula) {
  uint32_t seed = 11;
  for (int bits : kBits)
    for (int group : kGroups)
      for (Dtype dt : kScaleDtypes) {
        const int64_t n = 9, k = 2 * group;
        const auto w = random_vec(static_cast<size_t>(n * k), seed++, -0.7f, 1.3f);
        std::vector<uint32_t> packed(static_cast<size_t>(n * k * bits / 32));
        Params scales(dt, static_cast<size_t>(n * k / group)),
            biases(dt, static_cast<size_t>(n * k / group));
        quantize_affine(w.data(), n, k, bits, group, packed.data(), scales.bytes.data(),
                        biases.bytes.data(), dt);
        QuantView v{packed.data(), scales.bytes.data(), biases.bytes.data(), dt, n, k, bits, group};
        const int64_t r0 = 2, r1 = 7, ldo = k + 3;
        std::vector<float> out(static_cast<size_t>((r1 - r0) * ldo), -1.0f);
        dequantize_affine(v, r0, r1, out.data(), ldo);
        for (int64_t r = r0; r < r1; ++r)
          for (int64_t j = 0; j < k; ++j) {
            const size_t gi = static_cast<size_t>(r * (k / group) + j / group);
            const float s = scales.get(gi), b = biases.get(gi);
            const float direct =
                s * static_cast<float>(q_bitwise(packed.data() + r * k * bits / 32, bits, j)) + b;
            const float got = out[static_cast<size_t>((r - r0) * ldo + j)];
            ASSERT_EQ(got, direct);
            // Round trip: within one step (half a step plus the 16-bit rounding of scale
            // and bias and the snapped edge).
            ASSERT_NEAR(got, w[static_cast<size_t>(r * k + j)],
                        1.6 * std::fabs(s) + 0.01 * std::fabs(b) + 1e-6)
                << "bits=" << bits << " group=" << group;
          }
      }
}

TEST(DequantizeAffine, PackedLayoutGivesTheSameRows) {
  uint32_t seed = 31;
  for (int bits : kBits)
    for (int group : kGroups)
      for (Dtype dt : kScaleDtypes) {
        const int64_t n = 7, k = group == 128 ? 384 : 7 * group;
        const auto w = random_vec(static_cast<size_t>(n * k), seed++);
        std::vector<uint32_t> packed(static_cast<size_t>(n * k * bits / 32));
        Params scales(dt, static_cast<size_t>(n * k / group)),
            biases(dt, static_cast<size_t>(n * k / group));
        quantize_affine(w.data(), n, k, bits, group, packed.data(), scales.bytes.data(),
                        biases.bytes.data(), dt);
        const QuantView v{packed.data(), scales.bytes.data(), biases.bytes.data(), dt, n, k, bits,
                          group};
        const PackedQuantWeight p = pack_quantized(v);
        std::vector<float> a(static_cast<size_t>(n * k)), b(a.size());
        dequantize_affine(v, 1, n, a.data(), k);
        dequantize_packed(p, 1, n, b.data(), k);
        for (size_t i = 0; i < static_cast<size_t>((n - 1) * k); ++i)
          ASSERT_EQ(a[i], b[i]) << "bits=" << bits << " group=" << group << " i=" << i;
      }
}

// Packing then unpacking gives the MLX tensors back bit for bit. Random bits everywhere
// (every bit of the packed rows is some value's; scales and biases are arbitrary 16/32-bit
// patterns), rows not a multiple of 4, k with and without padding, a row stride.
TEST(UnpackQuantized, RestoresMlxTensorsBitForBit) {
  std::mt19937 rng(123);
  for (int bits : kBits)
    for (int group : kGroups)
      for (Dtype dt : kScaleDtypes)
        for (int64_t k : {int64_t{group}, int64_t{3} * group, int64_t{256} + group}) {
          const int64_t n = 7, words = k * bits / 32, stride = words + 5;
          const size_t ssize = dtype_size(dt), groups = static_cast<size_t>(k / group);
          std::vector<uint32_t> w(static_cast<size_t>(n * stride));
          for (auto& v : w) v = static_cast<uint32_t>(rng());
          std::vector<uint8_t> scales(static_cast<size_t>(n) * groups * ssize),
              biases(scales.size());
          for (auto& v : scales) v = static_cast<uint8_t>(rng());
          for (auto& v : biases) v = static_cast<uint8_t>(rng());
          QuantView view{w.data(), scales.data(), biases.data(), dt, n, k, bits, group};
          view.w_stride = stride;
          const PackedQuantWeight p = pack_quantized(view);
          std::vector<uint32_t> w2(static_cast<size_t>(n * words), 0xdeadbeef);
          std::vector<uint8_t> s2(scales.size(), 0xab), b2(biases.size(), 0xcd);
          unpack_quantized(p, w2.data(), s2.data(), b2.data());
          for (int64_t r = 0; r < n; ++r)
            for (int64_t i = 0; i < words; ++i)
              ASSERT_EQ(w2[static_cast<size_t>(r * words + i)],
                        w[static_cast<size_t>(r * stride + i)])
                  << "bits=" << bits << " group=" << group << " k=" << k << " row " << r << " word "
                  << i;
          ASSERT_EQ(s2, scales) << "bits=" << bits << " group=" << group << " k=" << k;
          ASSERT_EQ(b2, biases) << "bits=" << bits << " group=" << group << " k=" << k;
        }
}

// Random quantized weight in the MLX layout with padded strides.
struct QWeight {
  std::vector<uint32_t> w;
  Params scales, biases;
  QuantView view;
  QWeight(int64_t n, int64_t k, int bits, int group, Dtype dt, uint32_t seed)
      : scales(dt, 0), biases(dt, 0) {
    const int64_t words = k * bits / 32, ws = words + 3, groups = k / group, ss = groups + 1;
    std::mt19937 rng(seed);
    w.resize(static_cast<size_t>(n * ws));
    for (auto& e : w) e = rng();
    scales = Params(dt, static_cast<size_t>(n * ss));
    biases = Params(dt, static_cast<size_t>(n * ss));
    std::uniform_real_distribution<float> us(0.01f, 0.1f), ub(-0.5f, 0.5f);
    for (size_t i = 0; i < static_cast<size_t>(n * ss); ++i) {
      scales.set(i, (rng() & 1) ? us(rng) : -us(rng));
      biases.set(i, ub(rng));
    }
    view = QuantView{w.data(), scales.bytes.data(), biases.bytes.data(), dt, n, k, bits, group, ws,
                     ss};
  }
  float deq(int64_t r, int64_t j) const {
    const size_t gi = static_cast<size_t>(r * view.s_stride + j / view.group_size);
    return scales.get(gi) *
               static_cast<float>(q_bitwise(w.data() + r * view.w_stride, view.bits, j)) +
           biases.get(gi);
  }
  // Magnitude of one weight's terms for error bounds. 8-bit kernels compute with q - 128
  // and move 128 * scale into the bias, so both forms count.
  float mag_term(int64_t r, int64_t j) const {
    const size_t gi = static_cast<size_t>(r * view.s_stride + j / view.group_size);
    const float q = static_cast<float>(q_bitwise(w.data() + r * view.w_stride, view.bits, j));
    return std::fabs(scales.get(gi)) * (q + (view.bits == 8 ? 128.0f : 0.0f)) +
           std::fabs(biases.get(gi));
  }
};

struct MShape {
  int64_t n, kg, m;  // k = kg * group (kg < 0: k = 896)
};
// x's rounding in a one-row product (check_against_reference's x_levels): AVX2 / AVX-512 round
// x to int16 or int8 as asked; NEON with sdot rounds it to int8 for an int8 request on the sdot
// kernel's shapes (8-bit, 4-bit with groups >= 64) and keeps f32 otherwise.
double matvec_x_levels(const CpuFeatures& features, ActivationPrecision prec, int bits, int group) {
  if (features.use_neon_dotprod() && prec == ActivationPrecision::int8 && (bits == 8 || (bits == 4 && group >= 64)))
    return 254;
  if (!features.use_avx2()) return 0;
  return prec == ActivationPrecision::int16 ? 65534 : prec == ActivationPrecision::int8 ? 254 : 0;
}

const MShape kShapes[] = {
    {1, 1, 1},  {7, 3, 1}, {33, -1, 1}, {6, 2, 2},   {13, -1, 5},
    {9, 2, 17}, {5, 1, 4}, {20, 1, 3},  {19, 13, 30},  // rows of the matvec (m < kMinGemmRows)
    {19, 13, 66}};  // the GEMM (m >= kMinGemmRows) over two k blocks (group 128)

// x_levels: 0 for exact f32 activations, else the x rounding's 2 * max level (254 for
// int8, 65534 for int16): each x is then off by at most amax / x_levels.
void check_against_reference(const QWeight& qw,
                             const std::vector<float>& x,
                             int64_t ldx,
                             const std::vector<float>& y,
                             int64_t ldy,
                             int64_t m,
                             double rel,
                             const char* what,
                             double x_levels) {
  const QuantView& v = qw.view;
  std::vector<float> ref(static_cast<size_t>(m * ldy));
  quantized_matmul_reference(x.data(), ldx, v, ref.data(), ldy, m);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t r = 0; r < v.n; ++r) {
      double mag = 0, xerr = 0;
      for (int64_t g = 0; g < v.k / v.group_size; ++g) {
        double amax = 0, wsum = 0;
        for (int64_t j = g * v.group_size; j < (g + 1) * v.group_size; ++j) {
          const double xv = std::fabs(x[static_cast<size_t>(i * ldx + j)]);
          mag += xv * qw.mag_term(r, j);
          amax = std::max(amax, xv);
          wsum += qw.mag_term(r, j);
        }
        if (x_levels > 0) xerr += amax / x_levels * wsum;
      }
      const double tol = rel * mag * (1.0 + v.k / 256.0) + 1.01 * xerr + 1e-30;
      const size_t at = static_cast<size_t>(i * ldy + r);
      ASSERT_NEAR(y[at], ref[at], tol) << what << " bits=" << v.bits << " group=" << v.group_size
                                       << " dt=" << dtype_name(v.scale_dtype) << " n=" << v.n
                                       << " k=" << v.k << " m=" << m << " at " << i << "," << r;
    }
}

TEST(QuantizedMatmul, ReferenceMatchesDequantizedProduct) {
  QWeight qw(5, 64, 4, 32, Dtype::bf16, 3);
  const auto x = random_vec(64, 4);
  std::vector<float> y(5);
  quantized_matmul_reference(x.data(), 64, qw.view, y.data(), 5, 1);
  for (int64_t r = 0; r < 5; ++r) {
    double acc = 0;
    for (int64_t j = 0; j < 64; ++j) acc += double(x[static_cast<size_t>(j)]) * qw.deq(r, j);
    EXPECT_NEAR(y[static_cast<size_t>(r)], acc, 1e-4);
  }
}

TEST(QuantizedMatmul, MlxLayoutAllBitsGroupsDtypes) {
  FeatureGuard guard;
  ThreadPool pool(2);
  uint32_t seed = 21;
  for (const auto& features : paths()) {
    set_cpu_features_for_testing(features);
    for (int bits : kBits)
      for (int group : kGroups)
        for (Dtype dt : kScaleDtypes)
          for (const MShape& s : kShapes) {
            const int64_t k = s.kg < 0 ? 896 : s.kg * group;
            const QWeight qw(s.n, k, bits, group, dt, seed++);
            const int64_t ldx = k + 1, ldy = s.n + 2;
            const auto x = random_vec(static_cast<size_t>(s.m * ldx), seed++);
            std::vector<float> y(static_cast<size_t>(s.m * ldy), 555.0f);
            quantized_matmul(x.data(), ldx, qw.view, y.data(), ldy, s.m, &pool);
            check_against_reference(qw, x, ldx, y, ldy, s.m, 1e-6,
                                    cpu_tier_name(features.tier()), 0);
            for (int64_t i = 0; i < s.m; ++i)
              ASSERT_EQ(y[static_cast<size_t>(i * ldy + s.n)], 555.0f);
          }
  }
}

TEST(QuantizedMatmul, PackedAllBitsGroupsDtypesF32AndInt8) {
  FeatureGuard guard;
  ThreadPool pool2(2), pool3(3);
  uint32_t seed = 51;
  for (const auto& features : paths()) {
    set_cpu_features_for_testing(features);
    for (int bits : kBits)
      for (int group : kGroups)
        for (Dtype dt : kScaleDtypes)
          for (const MShape& s : kShapes) {
            const int64_t k = s.kg < 0 ? 896 : s.kg * group;
            const QWeight qw(s.n, k, bits, group, dt, seed++);
            const PackedQuantWeight packed = pack_quantized(qw.view);
            ASSERT_EQ(packed.n(), s.n);
            ASSERT_EQ(packed.k(), k);
            const int64_t ldx = k + 5, ldy = s.n + 1;
            const auto x = random_vec(static_cast<size_t>(s.m * ldx), seed++);
            for (ActivationPrecision prec : {ActivationPrecision::f32, ActivationPrecision::int16,
                                             ActivationPrecision::int8}) {
              std::vector<float> y(static_cast<size_t>(s.m * ldy), 555.0f);
              QuantMatmulOptions opt;
              opt.activations = prec;
              quantized_matmul(x.data(), ldx, packed, y.data(), ldy, s.m, opt,
                               (seed & 1) ? &pool2 : &pool3);
              // Which path ran: reduced precisions only on AVX2 and NEON; the matvec (m < 4)
              // on supported shapes, the GEMM (m >= 4) rounds x to int16 for either, any
              // shape. The AVX-512 GEMM rounds x to int8 when int8 is asked for (vpdpbusd).
              // NEON rounds x to int8 for an int8 request where it has sdot (any m, the
              // AVX2 int8 matvec's shapes) and keeps f32 otherwise.
              double levels = 0;
              const bool reduced = features.use_avx2() && s.m < 4;
              if (features.use_avx2() && s.m >= 4 && prec != ActivationPrecision::f32)
                levels = features.use_avx512() && prec == ActivationPrecision::int8 ? 254 : 65534;
              if (reduced && prec == ActivationPrecision::int8 &&
                  (bits == 8 || (bits == 4 && group >= 64)))
                levels = 254;
              if (reduced && prec == ActivationPrecision::int16 &&
                  (bits == 8 || (bits == 4 && group >= 64)))
                levels = 65534;
              if (features.use_neon_dotprod() && prec == ActivationPrecision::int8 &&
                  (bits == 8 || (bits == 4 && group >= 64)))
                levels = 254;
              check_against_reference(qw, x, ldx, y, ldy, s.m, 1e-6,
                                      cpu_tier_name(features.tier()), levels);
              for (int64_t i = 0; i < s.m; ++i)
                ASSERT_EQ(y[static_cast<size_t>(i * ldy + s.n)], 555.0f);
            }
          }
  }
}

// The reduced-precision paths must really run (a silent fall back to f32 would pass any
// tolerance): their error against the reference is ordered f32 < int16 < int8.
TEST(QuantizedMatmul, ReducedActivationPathsAreTakenAndOrdered) {
  if (!cpu_features().use_avx2()) GTEST_SKIP() << "reduced paths are AVX2 only";
  ThreadPool pool(2);
  const int64_t n = 64, k = 1024;
  const QWeight qw(n, k, 4, 64, Dtype::bf16, 77);
  const PackedQuantWeight packed = pack_quantized(qw.view);
  const auto x = random_vec(static_cast<size_t>(k), 78);
  std::vector<float> ref(static_cast<size_t>(n));
  quantized_matmul_reference(x.data(), k, qw.view, ref.data(), n, 1);
  double err[3] = {0, 0, 0}, scale = 0;
  const ActivationPrecision precs[3] = {ActivationPrecision::f32, ActivationPrecision::int16,
                                        ActivationPrecision::int8};
  for (int p = 0; p < 3; ++p) {
    std::vector<float> y(static_cast<size_t>(n));
    QuantMatmulOptions opt;
    opt.activations = precs[p];
    quantized_matmul(x.data(), k, packed, y.data(), n, 1, opt, &pool);
    for (int64_t r = 0; r < n; ++r) {
      err[p] = std::max(err[p],
                        double(std::fabs(y[static_cast<size_t>(r)] - ref[static_cast<size_t>(r)])));
      scale = std::max(scale, double(std::fabs(ref[static_cast<size_t>(r)])));
    }
  }
  EXPECT_LT(err[0], err[1]);
  EXPECT_LT(err[1], err[2]);
  EXPECT_LT(err[1], 1e-4 * scale);  // int16: ~1e-5 relative
  EXPECT_GT(err[2], 1e-4 * scale);  // int8: visibly coarser
}

// The GEMM's int16 path must really run: coarser than f32 activations but within the int16
// bound; an int8 request takes the same int16 path (bit for bit) below the AVX-512 tier, and
// there the int8 VNNI path (coarser than int16).
TEST(QuantizedMatmul, GemmInt16PathIsTakenForReducedPrecisions) {
  if (!cpu_features().use_avx2()) GTEST_SKIP() << "reduced paths are AVX2 only";
  ThreadPool pool(2);
  const int64_t n = 70, k = 1024, m = 13;
  for (int bits : {4, 8}) {
    const QWeight qw(n, k, bits, 64, Dtype::bf16, 177 + bits);
    const PackedQuantWeight packed = pack_quantized(qw.view);
    const auto x = random_vec(static_cast<size_t>(m * k), 178);
    std::vector<float> ref(static_cast<size_t>(m * n));
    quantized_matmul_reference(x.data(), k, qw.view, ref.data(), n, m);
    std::vector<float> y[3];
    double err[3] = {0, 0, 0}, scale = 0;
    const ActivationPrecision precs[3] = {ActivationPrecision::f32, ActivationPrecision::int16,
                                          ActivationPrecision::int8};
    for (int p = 0; p < 3; ++p) {
      y[p].resize(static_cast<size_t>(m * n));
      QuantMatmulOptions opt;
      opt.activations = precs[p];
      quantized_matmul(x.data(), k, packed, y[p].data(), n, m, opt, &pool);
      for (size_t i = 0; i < ref.size(); ++i) {
        err[p] = std::max(err[p], double(std::fabs(y[p][i] - ref[i])));
        scale = std::max(scale, double(std::fabs(ref[i])));
      }
    }
    EXPECT_LT(err[0], err[1]) << bits;
    EXPECT_LT(err[1], 1e-4 * scale) << bits;  // int16: ~1e-5 relative
    if (cpu_features().use_avx512()) {
      EXPECT_LT(err[1], err[2]) << bits;
      EXPECT_LT(err[2], 1e-2 * scale) << bits;  // int8: ~1e-3 relative
    } else {
      EXPECT_EQ(y[1], y[2]) << bits;
    }
  }
}

// Several weights over one x (decode's q/k/v, gate/up) give exactly the bits of separate
// calls: one x preparation and one region change no row's arithmetic. Mixed bits / groups
// (separate calls inside) and m >= 4 (GEMM) are covered too.
TEST(QuantizedMatmul, SharedInputTargetsEqualSeparateCallsBitForBit) {
  FeatureGuard guard;
  ThreadPool pool2(2), pool3(3);
  uint32_t seed = 900;
  struct Case {
    int bits[3];
    int group[3];
  };
  const Case cases[] = {{{4, 4, 4}, {64, 64, 64}}, {{4, 4, 4}, {32, 32, 32}},
                        {{8, 8, 8}, {64, 64, 64}}, {{8, 8, 8}, {32, 32, 32}},
                        {{4, 8, 4}, {64, 64, 32}}};
  // Odd, not multiples of the 4-row blocks; enough weights for a region of 2-3 threads.
  const int64_t rows[3] = {333, 97, 101};
  for (const auto& features : paths()) {
    set_cpu_features_for_testing(features);
    for (const Case& c : cases)
      for (ActivationPrecision prec :
           {ActivationPrecision::f32, ActivationPrecision::int16, ActivationPrecision::int8})
        for (int64_t m : {1, 2, 3, 5}) {
          const int64_t k = 384, ldx = k + 3;
          std::vector<QWeight> qws;
          std::vector<PackedQuantWeight> packed;
          qws.reserve(3);
          for (int i = 0; i < 3; ++i) {
            qws.emplace_back(rows[i], k, c.bits[i], c.group[i], Dtype::bf16, seed++);
            packed.push_back(pack_quantized(qws.back().view));
          }
          const auto x = random_vec(static_cast<size_t>(m * ldx), seed++);
          QuantMatmulOptions opt;
          opt.activations = prec;
          ThreadPool* pool = (seed & 1) ? &pool2 : &pool3;
          std::vector<std::vector<float>> sep(3), fused(3);
          std::vector<QuantMatmulTarget> targets;
          for (int i = 0; i < 3; ++i) {
            const int64_t ldy = rows[i] + 1;
            sep[static_cast<size_t>(i)].assign(static_cast<size_t>(m * ldy), 555.0f);
            fused[static_cast<size_t>(i)].assign(static_cast<size_t>(m * ldy), 555.0f);
            quantized_matmul(x.data(), ldx, packed[static_cast<size_t>(i)],
                             sep[static_cast<size_t>(i)].data(), ldy, m, opt, pool);
            targets.push_back(
                {&packed[static_cast<size_t>(i)], fused[static_cast<size_t>(i)].data(), ldy});
          }
          quantized_matmul(x.data(), ldx, targets, m, opt, pool);
          for (size_t i = 0; i < 3; ++i)
            for (size_t j = 0; j < sep[i].size(); ++j)
              ASSERT_EQ(std::bit_cast<uint32_t>(sep[i][j]), std::bit_cast<uint32_t>(fused[i][j]))
                  << "target " << i << " element " << j << " bits " << c.bits[i] << " group "
                  << c.group[i] << " m " << m << " precision " << static_cast<int>(prec);
        }
  }
}

// Weights over their own inputs (a decode token's chosen experts: gate/up over one x,
// down over each expert's activations) give exactly the bits of separate one-row calls:
// inputs that are one pointer share a preparation, weights of other sizes (k, n) share
// the region, mixed bits and more targets than a region takes run separately.
TEST(QuantizedMatmul, OwnInputTargetsEqualSeparateCallsBitForBit) {
  FeatureGuard guard;
  ThreadPool pool2(2), pool3(3);
  uint32_t seed = 1200;
  struct Case {
    int bits, group, odd_bits;  // odd_bits: the last weight's bits (mixed precision paths)
  };
  const Case cases[] = {{4, 64, 4}, {4, 32, 4}, {8, 64, 8}, {4, 128, 4}, {4, 64, 8}};
  for (const auto& features : paths()) {
    set_cpu_features_for_testing(features);
    for (const Case& c : cases)
      for (ActivationPrecision prec :
           {ActivationPrecision::f32, ActivationPrecision::int16, ActivationPrecision::int8})
        for (int count : {6, 18}) {
          // x index of each target: 0 and 1 and 3 one input (gate / up of one x), the
          // others their own; k 384 or 256 by input.
          std::vector<std::vector<float>> xs;
          for (int i = 0; i < 4; ++i) xs.push_back(random_vec(i == 1 ? 256 : 384, seed++));
          std::vector<QWeight> qws;
          std::vector<PackedQuantWeight> packed;
          std::vector<const float*> in;
          qws.reserve(static_cast<size_t>(count));
          for (int t = 0; t < count; ++t) {
            const int xi = t % 6 == 0 || t % 6 == 1 || t % 6 == 3 ? 0 : t % 6 == 2 ? 1 : t % 6 - 2;
            const int64_t k = static_cast<int64_t>(xs[static_cast<size_t>(xi)].size());
            const int64_t n = 33 + 97 * (t % 4) + t;  // odd, not whole 4-row blocks
            qws.emplace_back(n, k, t == count - 1 ? c.odd_bits : c.bits, c.group, Dtype::bf16, seed++);
            packed.push_back(pack_quantized(qws.back().view));
            in.push_back(xs[static_cast<size_t>(xi)].data());
          }
          QuantMatmulOptions opt;
          opt.activations = prec;
          ThreadPool* pool = (seed & 1) ? &pool2 : &pool3;
          std::vector<std::vector<float>> sep(packed.size()), each(packed.size());
          std::vector<QuantMatmulTarget> targets;
          for (size_t t = 0; t < packed.size(); ++t) {
            sep[t].assign(static_cast<size_t>(packed[t].n()), 555.0f);
            each[t].assign(static_cast<size_t>(packed[t].n()), 555.0f);
            quantized_matmul(in[t], 0, packed[t], sep[t].data(), 0, 1, opt, pool);
            targets.push_back({&packed[t], each[t].data(), 0});
          }
          quantized_matvec_each(in, targets, opt, pool);
          for (size_t t = 0; t < packed.size(); ++t) {
            if (t == 2)
              check_against_reference(qws[t], xs[1], 256, sep[t], packed[t].n(), 1, 1e-6, "own input",
                                      matvec_x_levels(features, prec, c.bits, c.group));
            for (size_t j = 0; j < sep[t].size(); ++j)
              ASSERT_EQ(std::bit_cast<uint32_t>(sep[t][j]), std::bit_cast<uint32_t>(each[t][j]))
                  << cpu_tier_name(features.tier()) << " target " << t << " of " << count << " element " << j
                  << " bits " << c.bits << " group " << c.group << " precision " << static_cast<int>(prec);
          }
        }
  }
}

// Decode matvecs large enough that workers take chunks (heads of >= 512 KiB, tails of
// ~64 KiB, two streams per chunk): 1, 2 and 3 threads give the same bits, separate calls
// and one shared region alike, and match the reference.
TEST(QuantizedMatmul, DecodeSplitOverThreadsGivesTheBitsOfOneThread) {
  FeatureGuard guard;
  ThreadPool pool1(1), pool2(2), pool3(3);
  ThreadPool* pools[3] = {&pool1, &pool2, &pool3};
  uint32_t seed = 1300;
  for (const auto& features : paths()) {
    set_cpu_features_for_testing(features);
    for (int bits : {4, 8}) {
      const int64_t k = 1024, ldx = k + 3;
      const int64_t rows[3] = {2051, 303, 299};  // 4.5 / 8.5 bits: ~1.2 / 2.2 MB in all
      std::vector<QWeight> qws;
      std::vector<PackedQuantWeight> packed;
      qws.reserve(3);
      for (int i = 0; i < 3; ++i) {
        qws.emplace_back(rows[i], k, bits, 64, Dtype::bf16, seed++);
        packed.push_back(pack_quantized(qws.back().view));
      }
      const auto x = random_vec(static_cast<size_t>(ldx), seed++);
      for (ActivationPrecision prec :
           {ActivationPrecision::f32, ActivationPrecision::int16, ActivationPrecision::int8}) {
        QuantMatmulOptions opt;
        opt.activations = prec;
        std::vector<float> first[3];
        for (ThreadPool* pool : pools) {
          std::vector<float> sep[3], fused[3];
          std::vector<QuantMatmulTarget> targets;
          for (int i = 0; i < 3; ++i) {
            sep[i].assign(static_cast<size_t>(rows[i]), 555.0f);
            fused[i].assign(static_cast<size_t>(rows[i]), 555.0f);
            quantized_matmul(x.data(), ldx, packed[static_cast<size_t>(i)], sep[i].data(), rows[i],
                             1, opt, pool);
            targets.push_back({&packed[static_cast<size_t>(i)], fused[i].data(), rows[i]});
          }
          quantized_matmul(x.data(), ldx, targets, 1, opt, pool);
          for (int i = 0; i < 3; ++i) {
            if (pool == &pool1) {
              first[i] = sep[i];
              check_against_reference(qws[static_cast<size_t>(i)], x, ldx, sep[i], rows[i], 1, 1e-6,
                                      "decode split", matvec_x_levels(features, prec, bits, 64));
            }
            for (size_t j = 0; j < first[i].size(); ++j) {
              ASSERT_EQ(std::bit_cast<uint32_t>(first[i][j]), std::bit_cast<uint32_t>(sep[i][j]))
                  << "threads " << pool->num_threads() << " target " << i << " row " << j;
              ASSERT_EQ(std::bit_cast<uint32_t>(first[i][j]), std::bit_cast<uint32_t>(fused[i][j]))
                  << "threads " << pool->num_threads() << " target " << i << " row " << j;
            }
          }
        }
      }
    }
  }
}

// Speculative decoding's verify pass and batched decode: m = 2 .. 9, 11, 17, 23 and 32 rows
// in one call (the AVX-512 few-row kernel for int16 x and for int8 x with 4 bits in groups
// of 64 / 128, in groups of up to 8 rows past 8; the row-looped matvec otherwise)
// give each row the bits of a one-row (decode) call, through one weight and through a
// shared-input region; with int16 / int8 x the AVX-512 kernel's rows are the AVX2 matvec's. Odd n and k (k an odd number of groups), 4 and 8 bits, every group
// and scale dtype; n = 2051 is large enough for 2-3 threads to split it into chunks.
TEST(QuantizedMatmul, FewRowsEqualOneRowCallsBitForBit) {
  FeatureGuard guard;
  ThreadPool pool2(2), pool3(3);
  uint32_t seed = 1700;
  struct Case {
    int bits, group;
    int64_t n, kg;
  };
  const Case cases[] = {{4, 64, 37, 3},  {4, 128, 2051, 7}, {4, 32, 13, 5},  {8, 32, 2051, 7},
                        {8, 64, 21, 3},  {8, 128, 9, 1},    {4, 64, 2051, 33}, {4, 64, 19, 1}};
  for (const auto& features : paths()) {
    set_cpu_features_for_testing(features);
    for (const Case& c : cases)
      for (Dtype dt : kScaleDtypes)
        for (ActivationPrecision prec :
             {ActivationPrecision::f32, ActivationPrecision::int16, ActivationPrecision::int8}) {
          // The large weights (threads, chunks) once per tier in bf16, not on the scalar tier.
          const bool large = c.n > 1000;
          if (large && (dt != Dtype::bf16 || !features.use_avx2())) continue;
          const int64_t k = c.kg * c.group, ldx = k + 5, ldy = c.n + 3;
          const QWeight qw(c.n, k, c.bits, c.group, dt, seed++);
          const QWeight qw2(c.n / 2 + 1, k, c.bits, c.group, dt, seed++);
          const PackedQuantWeight packed = pack_quantized(qw.view), packed2 = pack_quantized(qw2.view);
          QuantMatmulOptions opt;
          opt.activations = prec;
          const std::vector<int64_t> ms = large ? std::vector<int64_t>{2, 5, 8, 11, 32}
                                                : std::vector<int64_t>{2, 3, 4, 5, 6, 7, 8, 9, 17, 23};
          for (int64_t m : ms) {
            // From 4 rows on, an int8 request without AVX-512 runs int16 (rows_precision).
            if (prec == ActivationPrecision::int8 && m >= 4 && !features.use_avx512()) continue;
            ThreadPool* pool = (seed & 1) ? &pool2 : &pool3;
            const auto x = random_vec(static_cast<size_t>(m * ldx), seed++);
            std::vector<float> one(static_cast<size_t>(m * ldy), 555.0f), rows(one), shared(one),
                one2(static_cast<size_t>(m * ldy), 555.0f), shared2(one2);
            for (int64_t i = 0; i < m; ++i) {
              quantized_matmul(x.data() + i * ldx, ldx, packed, one.data() + i * ldy, ldy, 1, opt, pool);
              quantized_matmul(x.data() + i * ldx, ldx, packed2, one2.data() + i * ldy, ldy, 1, opt, pool);
            }
            quantized_matmul(x.data(), ldx, packed, rows.data(), ldy, m, opt, pool);
            const QuantMatmulTarget targets[2] = {{&packed, shared.data(), ldy}, {&packed2, shared2.data(), ldy}};
            quantized_matmul(x.data(), ldx, targets, m, opt, pool);
            for (size_t j = 0; j < one.size(); ++j) {
              ASSERT_EQ(std::bit_cast<uint32_t>(one[j]), std::bit_cast<uint32_t>(rows[j]))
                  << cpu_tier_name(features.tier()) << " bits " << c.bits << " group " << c.group << " dt "
                  << dtype_name(dt) << " m " << m << " precision " << static_cast<int>(prec) << " at " << j;
              ASSERT_EQ(std::bit_cast<uint32_t>(one[j]), std::bit_cast<uint32_t>(shared[j])) << "shared, at " << j;
              ASSERT_EQ(std::bit_cast<uint32_t>(one2[j]), std::bit_cast<uint32_t>(shared2[j])) << "shared 2, at " << j;
            }
            // int16 / int8 x: the AVX-512 kernel (one row or a few) gives the AVX2 matvec's bits.
            if (features.use_avx512() && prec != ActivationPrecision::f32) {
              set_cpu_features_for_testing(features.limited_to(CpuTier::avx2));
              std::vector<float> avx2(one.size(), 555.0f);
              for (int64_t i = 0; i < m; ++i)
                quantized_matmul(x.data() + i * ldx, ldx, packed, avx2.data() + i * ldy, ldy, 1, opt, pool);
              set_cpu_features_for_testing(features);
              for (size_t j = 0; j < one.size(); ++j)
                ASSERT_EQ(std::bit_cast<uint32_t>(one[j]), std::bit_cast<uint32_t>(avx2[j])) << "avx2 tier, at " << j;
            }
            if (m == 5 && !large)
              check_against_reference(qw, x, ldx, rows, ldy, m, 1e-6, "few rows",
                                      !features.use_avx2()                      ? 0
                                      : prec == ActivationPrecision::int16      ? 65534
                                      : prec == ActivationPrecision::int8       ? 254
                                                                                : 0);
          }
        }
  }
}

// y = x @ dequant(W) (x over the rows) on every tier against a double-precision sum of the
// independently dequantized weights, padded row strides included; several products in one
// call (one region) give what each gives alone.
TEST(QuantizedVecmat, EveryTierMatchesDequantizedRows) {
  FeatureGuard guard;
  ThreadPool pool(2);
  uint32_t seed = 900;
  for (const auto& features : paths()) {
    set_cpu_features_for_testing(features);
    for (int bits : kBits)
      for (int group : kGroups)
        for (Dtype dt : kScaleDtypes) {
          const int64_t n = 37, k = 2 * group;
          const QWeight qw(n, k, bits, group, dt, seed++);
          const auto x = random_vec(static_cast<size_t>(n), seed++);
          std::vector<float> y(static_cast<size_t>(k)), again(y.size());
          const QuantVecmat products[2] = {{x.data(), qw.view, y.data()}, {x.data(), qw.view, again.data()}};
          quantized_vecmat(products, &pool);
          for (int64_t j = 0; j < k; ++j) {
            double want = 0.0, mag = 0.0;
            for (int64_t r = 0; r < n; ++r) {
              want += static_cast<double>(x[static_cast<size_t>(r)]) * qw.deq(r, j);
              mag += std::fabs(x[static_cast<size_t>(r)]) * qw.mag_term(r, j);
            }
            ASSERT_NEAR(y[static_cast<size_t>(j)], want, 5e-6 * mag + 1e-6)
                << "bits " << bits << " group " << group << " column " << j << " avx2 " << features.use_avx2();
          }
          std::vector<float> alone(y.size());
          const QuantVecmat one{x.data(), qw.view, alone.data()};
          quantized_vecmat({&one, 1}, &pool);
          EXPECT_EQ(alone, y);
          EXPECT_EQ(again, y);
        }
  }
}

TEST(QuantizedMatmul, EveryMFromOneToSeventeen) {
  FeatureGuard guard;
  ThreadPool pool(2);
  uint32_t seed = 700;
  for (const auto& features : paths()) {
    set_cpu_features_for_testing(features);
    for (int bits : {3, 4, 8}) {
      const QWeight qw(11, 192, bits, 64, Dtype::bf16, seed++);
      const PackedQuantWeight packed = pack_quantized(qw.view);
      for (int64_t m = 1; m <= 17; ++m) {
        const int64_t ldx = 192 + 3, ldy = 11 + 2;
        const auto x = random_vec(static_cast<size_t>(m * ldx), seed++);
        std::vector<float> y(static_cast<size_t>(m * ldy)), y2(y.size());
        quantized_matmul(x.data(), ldx, packed, y.data(), ldy, m, {}, &pool);
        check_against_reference(qw, x, ldx, y, ldy, m, 1e-6, "packed every m", 0);
        quantized_matmul(x.data(), ldx, qw.view, y2.data(), ldy, m, &pool);
        check_against_reference(qw, x, ldx, y2, ldy, m, 1e-6, "view every m", 0);
      }
    }
  }
}

TEST(QuantizedMatmul, LargePrefillShape) {
  FeatureGuard guard;
  ThreadPool pool(2);
  for (const auto& features : paths()) {
    set_cpu_features_for_testing(features);
    for (int bits : {4, 8}) {
      const int64_t n = 67, k = 512, m = 512;
      const QWeight qw(n, k, bits, 64, Dtype::bf16, static_cast<uint32_t>(bits));
      const PackedQuantWeight packed = pack_quantized(qw.view);
      const auto x = random_vec(static_cast<size_t>(m * k), 9);
      std::vector<float> y(static_cast<size_t>(m * n)), y2(y.size());
      quantized_matmul(x.data(), k, packed, y.data(), n, m, {}, &pool);
      check_against_reference(qw, x, k, y, n, m, 1e-6, "packed prefill", 0);
      quantized_matmul(x.data(), k, qw.view, y2.data(), n, m, &pool);
      check_against_reference(qw, x, k, y2, n, m, 1e-6, "view prefill", 0);
    }
  }
}

}  // namespace
}  // namespace lmx::cpu
