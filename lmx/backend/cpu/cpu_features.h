// Run-time CPU feature detection and the kernel tier it selects: one binary runs on
// machines with and without AVX2 / AVX-512, and each kernel family takes the best tier
// the CPU (and LMX_CPU) allow. x86-64 builds carry the AVX tiers, aarch64 builds the NEON
// tier; the scalar tier is everywhere.
#pragma once

#include <cstdint>

// Which architecture's SIMD kernels this build carries. Kernel entry points of the other
// architecture are neither compiled nor referenced (their dispatch sites test these).
#if defined(__x86_64__)
#define LMX_CPU_X86 1
#elif defined(__aarch64__)
#define LMX_CPU_ARM64 1
#endif

namespace lmx::cpu {

// Kernel tiers, ordered: each tier's kernels may use everything below it.
//   scalar:   the reference loops.
//   avx2:     AVX2 + FMA + F16C (Haswell / Zen 1 and later).
//   avx_vnni: avx2 plus the 256-bit VEX VNNI dot products (vpdpwssd; Alder Lake, Zen 5).
//   avx512:   AVX-512 F/BW/DQ/VL + VNNI (Ice Lake, Zen 4 and later); bf16 dot products
//             (AVX512_BF16) where the CPU has them.
//   neon:     aarch64 Advanced SIMD (every ARMv8-A core); int8 dot products (sdot,
//             FEAT_DotProd) where the CPU has them. i8mm and bf16 are detected and named.
// The x86 tiers and neon never meet in one binary; capping at a tier of the other
// architecture (LMX_CPU=avx2 on ARM) changes nothing.
enum class CpuTier : uint8_t { scalar, avx2, avx_vnni, avx512, neon };

struct CpuFeatures {
  bool avx2 = false;
  bool fma = false;
  bool f16c = false;
  bool avx_vnni = false;
  bool avx512f = false;
  bool avx512bw = false;
  bool avx512dq = false;
  bool avx512vl = false;
  bool avx512_vnni = false;
  bool avx512_bf16 = false;
  // A choice, not a CPU feature: the AVX-512 bf16 GEMM rounds x to bf16 for vdpbf16ps
  // (use_avx512_bf16), as PyTorch, MLX and lmx's CUDA backend compute a bf16 model's
  // matmuls. Detection turns it on where vdpbf16ps outruns the f32 FMA path: AMD's cores
  // (a Zen 5 EPYC: 1.6-1.9x), not Intel's (Emerald Rapids: 0.53-0.60x). LMX_BF16_DOT=1 / 0
  // forces it. docs/performance.md ("Session 23: vdpbf16ps by default on AMD") has the numbers.
  bool bf16_dot = false;
  bool neon = false;          // AT_HWCAP asimd
  bool neon_dotprod = false;  // AT_HWCAP asimddp: sdot / udot
  bool neon_i8mm = false;     // AT_HWCAP2 i8mm: smmla (no kernel uses it yet)
  bool neon_bf16 = false;     // AT_HWCAP2 bf16: bfdot / bfmmla (no kernel uses it yet)

  // True when AVX2 + FMA + F16C kernels may run (and LMX_CPU is not "scalar").
  bool use_avx2() const { return avx2 && fma && f16c; }
  // 256-bit VNNI inside the AVX2 kernels.
  bool use_avx_vnni() const { return use_avx2() && avx_vnni; }
  // The AVX-512 tier: 512-bit kernels with masked tails and VNNI dot products.
  bool use_avx512() const {
    return use_avx2() && avx512f && avx512bw && avx512dq && avx512vl && avx512_vnni;
  }
  // bf16 dot products (vdpbf16ps) in the AVX-512 tier's bf16 GEMM (x rounded to bf16):
  // the CPU has AVX512_BF16 and bf16_dot chose them.
  bool use_avx512_bf16() const { return use_avx512() && avx512_bf16 && bf16_dot; }
  // The NEON tier, and its int8 dot products.
  bool use_neon() const { return neon; }
  bool use_neon_dotprod() const { return neon && neon_dotprod; }
  // The best tier these features allow.
  CpuTier tier() const;
  // These features with everything above `t` switched off (t above tier() changes nothing).
  CpuFeatures limited_to(CpuTier t) const;
};

// Detected once. LMX_CPU=scalar|avx2|avx_vnni|avx512|neon caps the tier (for comparing paths;
// a tier the CPU lacks falls back to the best one it has).
const CpuFeatures& cpu_features();

// What the CPU itself supports, ignoring LMX_CPU (tests enumerate the tiers from this).
const CpuFeatures& detected_cpu_features();

// "scalar", "avx2", "avx_vnni", "avx512" or "neon" (the LMX_CPU spelling).
const char* cpu_tier_name(CpuTier t);
// The active tier in words for `lmx bench` and `-v`, e.g. "avx512 (AVX-512 VNNI, BF16)"
// or "neon (dotprod, i8mm, bf16)".
const char* active_cpu_tier_description();

// Overrides the detected features (tests use this to run every path).
void set_cpu_features_for_testing(const CpuFeatures& f);

}  // namespace lmx::cpu
