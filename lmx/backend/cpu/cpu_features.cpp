#include "lmx/backend/cpu/cpu_features.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <initializer_list>

#if defined(LMX_CPU_ARM64) && defined(__linux__)
#include <sys/auxv.h>
// The Linux hwcap bits (asm/hwcap.h), for C libraries whose headers predate them.
#ifndef HWCAP_ASIMD
#define HWCAP_ASIMD (1UL << 1)
#endif
#ifndef HWCAP_ASIMDDP
#define HWCAP_ASIMDDP (1UL << 20)
#endif
#ifndef HWCAP2_I8MM
#define HWCAP2_I8MM (1UL << 13)
#endif
#ifndef HWCAP2_BF16
#define HWCAP2_BF16 (1UL << 14)
#endif
#endif

namespace lmx::cpu {
namespace {

CpuFeatures detect() {
  CpuFeatures f;
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  f.avx2 = __builtin_cpu_supports("avx2");
  f.fma = __builtin_cpu_supports("fma");
  // F16C has no __builtin_cpu_supports name in older compilers; AVX2 machines all have it,
  // but check CPUID leaf 1 ECX bit 29 to be exact.
  unsigned eax = 1, ebx = 0, ecx = 0, edx = 0;
  __asm__ volatile("cpuid" : "+a"(eax), "=b"(ebx), "+c"(ecx), "=d"(edx));
  f.f16c = (ecx >> 29) & 1u;
  // libgcc's checks include the OS's XSAVE support for the ymm / zmm / mask registers.
  f.avx512f = __builtin_cpu_supports("avx512f");
  f.avx512bw = __builtin_cpu_supports("avx512bw");
  f.avx512dq = __builtin_cpu_supports("avx512dq");
  f.avx512vl = __builtin_cpu_supports("avx512vl");
  f.avx512_vnni = __builtin_cpu_supports("avx512vnni");
  f.avx512_bf16 = __builtin_cpu_supports("avx512bf16");
  // AVX-VNNI: CPUID leaf 7 subleaf 1, EAX bit 4 (clang 14 has no builtin name for it); the
  // OS's ymm state is covered by the avx2 check.
  unsigned max_leaf = 0;
  eax = 0;
  __asm__ volatile("cpuid" : "+a"(eax), "=b"(ebx), "=c"(ecx), "=d"(edx));
  max_leaf = eax;
  // vdpbf16ps where it is the faster bf16 GEMM (cpu_features.h): on AMD, whose vendor
  // string in leaf 0 is EBX, EDX, ECX = "Auth" "enti" "cAMD".
  f.bf16_dot = ebx == 0x68747541u && edx == 0x69746e65u && ecx == 0x444d4163u;
  if (max_leaf >= 7) {
    eax = 7;
    ecx = 1;
    __asm__ volatile("cpuid" : "+a"(eax), "=b"(ebx), "+c"(ecx), "=d"(edx));
    f.avx_vnni = (eax >> 4) & 1u;
  }
#elif defined(LMX_CPU_ARM64) && defined(__linux__)
  const unsigned long hwcap = getauxval(AT_HWCAP), hwcap2 = getauxval(AT_HWCAP2);
  f.neon = (hwcap & HWCAP_ASIMD) != 0;
  f.neon_dotprod = (hwcap & HWCAP_ASIMDDP) != 0;
  f.neon_i8mm = (hwcap2 & HWCAP2_I8MM) != 0;
  f.neon_bf16 = (hwcap2 & HWCAP2_BF16) != 0;
#elif defined(LMX_CPU_ARM64)
  f.neon = true;  // Advanced SIMD is part of every aarch64 core; the extensions stay off.
#endif
  return f;
}

const CpuFeatures& detected() {
  static const CpuFeatures f = detect();
  return f;
}

CpuFeatures tier_from_env() {
  CpuFeatures f = detected();
  const char* env = std::getenv("LMX_CPU");
  if (!env || !*env) return f;
  for (CpuTier t :
       {CpuTier::scalar, CpuTier::avx2, CpuTier::avx_vnni, CpuTier::avx512, CpuTier::neon})
    if (std::strcmp(env, cpu_tier_name(t)) == 0) return f.limited_to(t);
  // A kernel library should not throw from a static initializer; say so once and go on.
  std::fprintf(stderr, "lmx: LMX_CPU='%s' ignored (scalar, avx2, avx_vnni, avx512 or neon)\n", env);
  return f;
}

CpuFeatures from_env() {
  CpuFeatures f = tier_from_env();
  // LMX_BF16_DOT=1 / 0 overrides detection's choice (bf16_dot).
  const char* dot = std::getenv("LMX_BF16_DOT");
  if (dot && (std::strcmp(dot, "0") == 0 || std::strcmp(dot, "1") == 0))
    f.bf16_dot = *dot == '1';
  else if (dot && *dot)
    std::fprintf(stderr, "lmx: LMX_BF16_DOT='%s' ignored (0 or 1)\n", dot);
  return f;
}

CpuFeatures& slot() {
  static CpuFeatures f = from_env();
  return f;
}

}  // namespace

CpuTier CpuFeatures::tier() const {
  if (use_avx512()) return CpuTier::avx512;
  if (use_avx_vnni()) return CpuTier::avx_vnni;
  if (use_avx2()) return CpuTier::avx2;
  if (use_neon()) return CpuTier::neon;
  return CpuTier::scalar;
}

// The x86 caps leave the NEON features alone and the NEON cap leaves x86's (a cap of the
// other architecture changes nothing); scalar clears everything.
CpuFeatures CpuFeatures::limited_to(CpuTier t) const {
  CpuFeatures f = *this;
  if (t < CpuTier::avx512)
    f.avx512f = f.avx512bw = f.avx512dq = f.avx512vl = f.avx512_vnni = f.avx512_bf16 = false;
  if (t < CpuTier::avx_vnni) f.avx_vnni = false;
  if (t < CpuTier::avx2) f = CpuFeatures{};
  return f;
}

const CpuFeatures& cpu_features() { return slot(); }
const CpuFeatures& detected_cpu_features() { return detected(); }
void set_cpu_features_for_testing(const CpuFeatures& f) { slot() = f; }

const char* cpu_tier_name(CpuTier t) {
  switch (t) {
    case CpuTier::neon:
      return "neon";
    case CpuTier::avx512:
      return "avx512";
    case CpuTier::avx_vnni:
      return "avx_vnni";
    case CpuTier::avx2:
      return "avx2";
    default:
      return "scalar";
  }
}

const char* active_cpu_tier_description() {
  const CpuFeatures& f = cpu_features();
  switch (f.tier()) {
    case CpuTier::avx512:
      if (!f.avx512_bf16) return "avx512 (AVX-512 VNNI)";
      return f.bf16_dot ? "avx512 (AVX-512 VNNI, BF16 dot products)" : "avx512 (AVX-512 VNNI, BF16)";
    case CpuTier::avx_vnni:
      return "avx_vnni (AVX2, FMA, F16C, AVX-VNNI)";
    case CpuTier::avx2:
      return "avx2 (AVX2, FMA, F16C)";
    case CpuTier::neon: {
      static const char* const kNeon[8] = {"neon",
                                           "neon (dotprod)",
                                           "neon (i8mm)",
                                           "neon (dotprod, i8mm)",
                                           "neon (bf16)",
                                           "neon (dotprod, bf16)",
                                           "neon (i8mm, bf16)",
                                           "neon (dotprod, i8mm, bf16)"};
      return kNeon[(f.neon_dotprod ? 1 : 0) | (f.neon_i8mm ? 2 : 0) | (f.neon_bf16 ? 4 : 0)];
    }
    default:
      return "scalar";
  }
}

}  // namespace lmx::cpu
