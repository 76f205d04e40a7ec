#include "lmx/backend/cpu/cpu_features.h"

#include <cstdlib>
#include <cstring>

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
#endif
  if (const char* env = std::getenv("LMX_CPU"); env && std::strcmp(env, "scalar") == 0) {
    f = CpuFeatures{};
  }
  return f;
}

CpuFeatures& slot() {
  static CpuFeatures f = detect();
  return f;
}

}  // namespace

const CpuFeatures& cpu_features() { return slot(); }
void set_cpu_features_for_testing(const CpuFeatures& f) { slot() = f; }

}  // namespace lmx::cpu
