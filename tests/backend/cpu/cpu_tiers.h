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
// AVX-512 tier with AVX512_BF16 likewise: as by default, then with the opt-in bf16 dot
// products (bf16_dot, LMX_BF16_DOT=1).
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

}  // namespace lmx::cpu::testing
