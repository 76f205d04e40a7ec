// Helpers shared by the NN kernel tests: random data, the CPU tiers, tolerances.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "cpu_tiers.h"
#include "lmx/backend/cpu/cpu_features.h"
#include "lmx/core/half.h"

namespace lmx::cpu::testing {

// Uniform values in [lo, hi], never exactly zero.
inline std::vector<float> random_vector(size_t n,
                                        uint32_t seed,
                                        float lo = -1.0f,
                                        float hi = 1.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) {
    do x = dist(rng);
    while (x == 0.0f);
  }
  return v;
}

// Runs the kernels under test on one tier (scalar, avx2 or avx512) for the lifetime of
// the object.
class ScopedCpuPath : public ScopedCpuFeatures {
 public:
  explicit ScopedCpuPath(CpuTier tier) : ScopedCpuFeatures(features_of(tier)) {}

 private:
  static CpuFeatures features_of(CpuTier tier) {
    CpuFeatures f;
    EXPECT_TRUE(tier_features(tier, f)) << "this CPU lacks the " << cpu_tier_name(tier) << " tier";
    return f;
  }
};

// The NN kernels' tiers: scalar, avx2, avx512 (avx_vnni and bf16 dot products change no NN
// kernel).
inline const CpuTier kNnTiers[] = {CpuTier::scalar, CpuTier::avx2, CpuTier::avx512};

// The tiers of kNnTiers this machine can run, lowest first (scalar always). Tests that
// must show a missing tier as skipped use NnTierTest (nn_tiers_test.cpp).
inline std::vector<CpuTier> available_paths() {
  std::vector<CpuTier> paths;
  for (CpuTier t : kNnTiers) {
    CpuFeatures f;
    if (tier_features(t, f)) paths.push_back(t);
  }
  return paths;
}
inline const char* path_name(CpuTier tier) { return cpu_tier_name(tier); }

// Distance in units in the last place between two finite floats of the same sign.
inline int64_t ulp_distance(float a, float b) {
  if (a == b) return 0;
  auto key = [](float f) {
    int32_t i;
    std::memcpy(&i, &f, 4);
    return i < 0 ? int64_t{INT32_MIN} - i : int64_t{i};
  };
  return std::llabs(key(a) - key(b));
}

// 16-bit storage of f32 values and back (the values a 16-bit tensor really holds).
inline std::vector<uint16_t> to_half(const std::vector<float>& v, bool bf16) {
  std::vector<uint16_t> h(v.size());
  for (size_t i = 0; i < v.size(); ++i) h[i] = bf16 ? f32_to_bf16(v[i]) : f32_to_f16(v[i]);
  return h;
}

}  // namespace lmx::cpu::testing
