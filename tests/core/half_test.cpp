// Checks the f16/bf16 conversions against independent definitions: the hardware
// F16C conversion where the CPU has it, and exhaustive round trips of every 16-bit pattern.
#include "lmx/core/half.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>

namespace lmx {
namespace {

// Reference bf16 rounding computed in double: pick the nearer of the two neighbours,
// ties to the even one.
uint16_t bf16_reference(float f) {
  if (std::isnan(f)) return f32_to_bf16(f);
  uint32_t u = std::bit_cast<uint32_t>(f);
  uint32_t lo = u & 0xffff0000u;
  uint32_t hi = lo + 0x10000u;
  double dl = std::bit_cast<float>(lo), dh = std::bit_cast<float>(hi), d = f;
  if (std::isinf(std::bit_cast<float>(hi)) && !std::isinf(f)) {
    // Overflow boundary: the neighbour above is infinity; rounding to it happens past
    // the midpoint (max + half ulp) exactly as IEEE says.
    dh = std::ldexp(1.0, 128) * (f < 0 ? -1 : 1);
  }
  double el = std::fabs(d - dl), eh = std::fabs(dh - d);
  if (el < eh) return static_cast<uint16_t>(lo >> 16);
  if (eh < el) return static_cast<uint16_t>(hi >> 16);
  return static_cast<uint16_t>(((lo >> 16) & 1u) ? (hi >> 16) : (lo >> 16));
}

TEST(Half, Bf16RoundTripEveryPattern) {
  for (uint32_t h = 0; h < 0x10000u; ++h) {
    float f = bf16_to_f32(static_cast<uint16_t>(h));
    if (std::isnan(f)) continue;
    ASSERT_EQ(f32_to_bf16(f), h) << std::hex << h;
  }
}

TEST(Half, F16RoundTripEveryPattern) {
  for (uint32_t h = 0; h < 0x10000u; ++h) {
    float f = f16_to_f32(static_cast<uint16_t>(h));
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(f16_to_f32(f32_to_f16(f))));
      continue;
    }
    ASSERT_EQ(f32_to_f16(f), h) << std::hex << h;
  }
}

TEST(Half, Bf16RoundsToNearestEvenOnRandomFloats) {
  std::mt19937 rng(7);
  for (int i = 0; i < 200000; ++i) {
    float f = std::bit_cast<float>(static_cast<uint32_t>(rng()));
    if (std::isnan(f)) continue;
    ASSERT_EQ(f32_to_bf16(f), bf16_reference(f)) << f;
  }
}

// Reference f16 rounding: among all finite f16 values and infinity, the nearest in
// double arithmetic, ties to even mantissa.
TEST(Half, F16RoundsToNearestEvenOnRandomFloats) {
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> mag(-30.0f, 17.0f);
  for (int i = 0; i < 200000; ++i) {
    float f = std::exp2(mag(rng)) * ((rng() & 1) ? -1.0f : 1.0f);
    if (i % 7 == 0) {
      // Exact ties: halfway between two f16 neighbours.
      uint16_t a = static_cast<uint16_t>(rng() % 0x7bffu);
      f = static_cast<float>((static_cast<double>(f16_to_f32(a)) + f16_to_f32(a + 1)) / 2);
    }
    uint16_t got = f32_to_f16(f);
    double d = f;
    uint16_t sign = std::signbit(f) ? 0x8000 : 0;
    // Search the two candidates around got.
    double best = 1e300;
    uint16_t want = 0;
    for (int delta = -1; delta <= 1; ++delta) {
      int c = static_cast<int>(got & 0x7fff) + delta;
      if (c < 0 || c > 0x7c00) continue;
      double v = (c == 0x7c00) ? 65520.0 : f16_to_f32(static_cast<uint16_t>(c));
      double e = std::fabs(std::fabs(d) - v);
      if (e < best || (e == best && (c & 1) == 0)) {
        best = e;
        want = static_cast<uint16_t>(c) | sign;
      }
    }
    ASSERT_EQ(got, want) << f;
  }
}

TEST(Half, SpecialValues) {
  EXPECT_EQ(f32_to_f16(65504.0f), 0x7bffu);
  EXPECT_EQ(f32_to_f16(65520.0f), 0x7c00u);  // halfway to 65536 rounds to inf
  EXPECT_EQ(f32_to_f16(-0.0f), 0x8000u);
  EXPECT_EQ(f16_to_f32(0x0001u), std::ldexp(1.0f, -24));
  EXPECT_EQ(f32_to_bf16(1.00390625f), 0x3f80u);  // tie, even stays
  EXPECT_EQ(f32_to_bf16(1.01171875f), 0x3f82u);  // tie, odd rounds up
  EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(std::nanf("")))));
}

}  // namespace
}  // namespace lmx
