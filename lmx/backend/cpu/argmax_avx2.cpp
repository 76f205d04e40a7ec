// Two passes, both vectorized: the maximum (vmaxps returns its second operand when the
// first is NaN, so NaNs never win), then the first index holding it. Over Qwen's 151936
// logits: 12 us against 75 us for std::max_element at -O3 (Zen 3), once per decode step.
#include "lmx/backend/cpu/argmax_avx2.h"

#include <immintrin.h>

#include <cmath>
#include <limits>

namespace lmx::cpu::detail {

int64_t argmax_avx2(const float* x, int64_t n) {
  if (std::isnan(x[0])) return 0;  // std::max_element keeps a NaN first element
  const int64_t n8 = n / 8 * 8;
  __m256 m0 = _mm256_set1_ps(-std::numeric_limits<float>::infinity()), m1 = m0;
  int64_t i = 0;
  for (; i + 16 <= n8; i += 16) {
    m0 = _mm256_max_ps(_mm256_loadu_ps(x + i), m0);
    m1 = _mm256_max_ps(_mm256_loadu_ps(x + i + 8), m1);
  }
  for (; i < n8; i += 8) m0 = _mm256_max_ps(_mm256_loadu_ps(x + i), m0);
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, _mm256_max_ps(m0, m1));
  float m = lanes[0];
  for (int l = 1; l < 8; ++l) m = std::max(m, lanes[l]);
  for (i = n8; i < n; ++i)
    if (x[i] > m) m = x[i];
  const __m256 mv = _mm256_set1_ps(m);
  for (i = 0; i < n8; i += 8) {
    const int mask = _mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(x + i), mv, _CMP_EQ_OQ));
    if (mask) return i + __builtin_ctz(static_cast<unsigned>(mask));
  }
  for (i = n8; i < n; ++i)
    if (x[i] == m) return i;
  return 0;  // not reached: m is one of the values
}

}  // namespace lmx::cpu::detail
