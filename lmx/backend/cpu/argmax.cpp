#include "lmx/backend/cpu/argmax.h"

#include <algorithm>

#include "lmx/backend/cpu/argmax_avx2.h"
#include "lmx/backend/cpu/cpu_features.h"

namespace lmx::cpu {

int64_t argmax(const float* x, int64_t n) {
  if (n <= 1) return 0;
#ifdef LMX_CPU_X86
  if (cpu_features().use_avx2()) return detail::argmax_avx2(x, n);
#endif
  return std::max_element(x, x + n) - x;
}

}  // namespace lmx::cpu
