// Run-time CPU feature detection: AVX2 kernels run only where the CPU has them,
// so one binary serves machines with and without AVX2.
#pragma once

namespace lmx::cpu {

struct CpuFeatures {
  bool avx2 = false;
  bool fma = false;
  bool f16c = false;
  // True when AVX2 + FMA + F16C kernels may run (and LMX_CPU is not "scalar").
  bool use_avx2() const { return avx2 && fma && f16c; }
};

// Detected once; LMX_CPU=scalar forces the scalar reference kernels (for tests and
// for comparing paths).
const CpuFeatures& cpu_features();

// Overrides the detected features (tests use this to run both paths).
void set_cpu_features_for_testing(const CpuFeatures& f);

}  // namespace lmx::cpu
