// Helpers shared by the NN kernel tests: random data, both CPU paths, tolerances.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

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

// Runs the kernels under test on one code path for the lifetime of the object.
class ScopedCpuPath {
 public:
  explicit ScopedCpuPath(bool avx2) : saved_(cpu_features()) {
    CpuFeatures f = saved_;
    if (!avx2) f.avx2 = f.fma = f.f16c = false;
    set_cpu_features_for_testing(f);
  }
  ~ScopedCpuPath() { set_cpu_features_for_testing(saved_); }
  ScopedCpuPath(const ScopedCpuPath&) = delete;
  ScopedCpuPath& operator=(const ScopedCpuPath&) = delete;

 private:
  CpuFeatures saved_;
};

// The paths this machine can run: scalar always, AVX2 where present.
inline std::vector<bool> available_paths() {
  std::vector<bool> paths = {false};
  if (cpu_features().use_avx2()) paths.push_back(true);
  return paths;
}
inline const char* path_name(bool avx2) { return avx2 ? "avx2" : "scalar"; }

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
