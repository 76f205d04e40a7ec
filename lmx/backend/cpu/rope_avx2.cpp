// AVX2 rotary embedding of one head vector. See vec_math_avx2.h for the rules of AVX2
// files.
#include "lmx/backend/cpu/rope_avx2.h"

#include <immintrin.h>

namespace lmx::cpu::detail {

void rope_head_avx2(const float* x,
                    float* out,
                    int64_t head_dim,
                    int64_t half,
                    bool traditional,
                    const float* c,
                    const float* s) {
  int64_t i = 0;
  if (!traditional) {
    for (; i + 8 <= half; i += 8) {
      const __m256 x0 = _mm256_loadu_ps(x + i), x1 = _mm256_loadu_ps(x + half + i);
      const __m256 vc = _mm256_loadu_ps(c + i), vs = _mm256_loadu_ps(s + i);
      _mm256_storeu_ps(out + i, _mm256_fmsub_ps(x0, vc, _mm256_mul_ps(x1, vs)));
      _mm256_storeu_ps(out + half + i, _mm256_fmadd_ps(x1, vc, _mm256_mul_ps(x0, vs)));
    }
    for (; i < half; ++i) {
      const float x0 = x[i], x1 = x[half + i];
      out[i] = x0 * c[i] - x1 * s[i];
      out[half + i] = x1 * c[i] + x0 * s[i];
    }
  } else {
    const __m256i lo_idx = _mm256_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3);
    const __m256i hi_idx = _mm256_setr_epi32(4, 4, 5, 5, 6, 6, 7, 7);
    // 8 pairs (16 floats) per step; even lanes x0 c - x1 s, odd lanes x1 c + x0 s.
    for (; i + 8 <= half; i += 8) {
      const __m256 vc = _mm256_loadu_ps(c + i), vs = _mm256_loadu_ps(s + i);
      const __m256 c0 = _mm256_permutevar8x32_ps(vc, lo_idx),
                   c1 = _mm256_permutevar8x32_ps(vc, hi_idx);
      const __m256 s0 = _mm256_permutevar8x32_ps(vs, lo_idx),
                   s1 = _mm256_permutevar8x32_ps(vs, hi_idx);
      const __m256 a = _mm256_loadu_ps(x + 2 * i), b = _mm256_loadu_ps(x + 2 * i + 8);
      const __m256 as = _mm256_permute_ps(a, 0xB1), bs = _mm256_permute_ps(b, 0xB1);
      _mm256_storeu_ps(out + 2 * i, _mm256_fmaddsub_ps(a, c0, _mm256_mul_ps(as, s0)));
      _mm256_storeu_ps(out + 2 * i + 8, _mm256_fmaddsub_ps(b, c1, _mm256_mul_ps(bs, s1)));
    }
    for (; i < half; ++i) {
      const float x0 = x[2 * i], x1 = x[2 * i + 1];
      out[2 * i] = x0 * c[i] - x1 * s[i];
      out[2 * i + 1] = x1 * c[i] + x0 * s[i];
    }
  }
  if (out != x) {
    for (int64_t k = 2 * half; k < head_dim; ++k) out[k] = x[k];
  }
}

}  // namespace lmx::cpu::detail
