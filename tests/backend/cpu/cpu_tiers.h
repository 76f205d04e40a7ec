// The CPU kernel tiers (scalar, avx2, avx_vnni, avx512, neon) for the backend tests: each
// test that loops over paths runs every tier this machine supports.
#pragma once

#include <initializer_list>
#include <string>
#include <vector>

#include "lmx/backend/cpu/cpu_features.h"

namespace lmx::cpu::testing {

inline const CpuTier kAllTiers[] = {CpuTier::scalar, CpuTier::avx2, CpuTier::avx_vnni,
                                    CpuTier::avx512, CpuTier::neon};

// The features that select tier t on this CPU, or false when the CPU lacks it.
inline bool tier_features(CpuTier t, CpuFeatures& out) {
  out = detected_cpu_features().limited_to(t);
  return out.tier() == t;
}

// The NEON tier with its extensions (sdot, i8mm, bf16) switched off: the path of an
// ARMv8.0 core.
inline CpuFeatures without_neon_extensions(CpuFeatures f) {
  f.neon_dotprod = f.neon_i8mm = f.neon_bf16 = false;
  return f;
}

// Every tier this machine can run, lowest first, as the features that select it. Where the
// CPU has NEON extensions, the NEON tier comes twice: without them, then with them; the
// AVX-512 tier with AVX512_BF16 likewise: first with x kept in f32 (bf16_dot off, the
// default on Intel), then with the bf16 dot products (the default on AMD).
inline std::vector<CpuFeatures> available_tiers() {
  std::vector<CpuFeatures> out;
  for (CpuTier t : kAllTiers) {
    CpuFeatures f;
    if (!tier_features(t, f)) continue;
    if (t == CpuTier::neon && f.neon_dotprod) out.push_back(without_neon_extensions(f));
    if (t == CpuTier::avx512 && f.avx512_bf16) {
      f.bf16_dot = false;
      out.push_back(f);
      f.bf16_dot = true;
    }
    out.push_back(f);
  }
  return out;
}

// What a tier needs, for the skip message of a machine without it.
inline std::string tier_requirement(CpuTier t) {
  switch (t) {
    case CpuTier::avx512:
      return "AVX-512 F/BW/DQ/VL and AVX512_VNNI";
    case CpuTier::avx_vnni:
      return "AVX2, FMA, F16C and AVX-VNNI";
    case CpuTier::avx2:
      return "AVX2, FMA and F16C";
    case CpuTier::neon:
#ifdef LMX_CPU_ARM64
      return "aarch64 Advanced SIMD";
#else
      return "an aarch64 build";
#endif
    default:
      return "nothing";
  }
}

// Runs the kernels on `f` for the lifetime of the object.
class ScopedCpuFeatures {
 public:
  explicit ScopedCpuFeatures(const CpuFeatures& f) : saved_(cpu_features()) {
    set_cpu_features_for_testing(f);
  }
  ~ScopedCpuFeatures() { set_cpu_features_for_testing(saved_); }
  ScopedCpuFeatures(const ScopedCpuFeatures&) = delete;
  ScopedCpuFeatures& operator=(const ScopedCpuFeatures&) = delete;

 private:
  CpuFeatures saved_;
};

// The AVX-512 bf16 GEMM with x rounded to bf16 for vdpbf16ps (on: LMX_BF16_DOT=1, AMD's
// default) or kept in f32 (off: LMX_BF16_DOT=0, Intel's) for the lifetime of the object;
// without AVX512_BF16 both are the f32 path.
inline CpuFeatures with_bf16_dot(CpuFeatures f, bool on) {
  f.bf16_dot = on;
  return f;
}
class ScopedBf16Dot : public ScopedCpuFeatures {
 public:
  explicit ScopedBf16Dot(bool on) : ScopedCpuFeatures(with_bf16_dot(cpu_features(), on)) {}
};
// x in f32: for tests of something else than x's bf16 rounding (finite differences, bounds
// of the weights' rounding alone, CPU references of other devices).
class ExactBf16Matmuls : public ScopedBf16Dot {
 public:
  ExactBf16Matmuls() : ScopedBf16Dot(false) {}
};

}  // namespace lmx::cpu::testing
