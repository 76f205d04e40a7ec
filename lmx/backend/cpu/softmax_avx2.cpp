// AVX2 softmax / log-softmax rows. See vec_math_avx2.h for the rules of AVX2 files.
#include "lmx/backend/cpu/softmax_avx2.h"

#include <immintrin.h>

#include "lmx/backend/cpu/vec_math_avx2.h"

namespace lmx::cpu::detail {

namespace {

constexpr float kNegInf = -__builtin_inff();

inline float row_max(const float* x, int64_t dim) {
  const __m256 ninf = _mm256_set1_ps(kNegInf);
  __m256 m0 = ninf, m1 = ninf, m2 = ninf, m3 = ninf;
  int64_t i = 0;
  for (; i + 32 <= dim; i += 32) {
    m0 = _mm256_max_ps(m0, _mm256_loadu_ps(x + i));
    m1 = _mm256_max_ps(m1, _mm256_loadu_ps(x + i + 8));
    m2 = _mm256_max_ps(m2, _mm256_loadu_ps(x + i + 16));
    m3 = _mm256_max_ps(m3, _mm256_loadu_ps(x + i + 24));
  }
  for (; i + 8 <= dim; i += 8) m0 = _mm256_max_ps(m0, _mm256_loadu_ps(x + i));
  if (i < dim) {
    const __m256i mask = avx2::tail_mask(dim - i);
    const __m256 v =
        _mm256_blendv_ps(ninf, _mm256_maskload_ps(x + i, mask), _mm256_castsi256_ps(mask));
    m1 = _mm256_max_ps(m1, v);
  }
  return avx2::hmax(_mm256_max_ps(_mm256_max_ps(m0, m1), _mm256_max_ps(m2, m3)));
}

// Writes e^(x - m) to y (when kStore) and returns the sum.
template <bool kStore>
inline float exp_sum(const float* x, int64_t dim, float m, float* y) {
  const __m256 vm = _mm256_set1_ps(m);
  __m256 s0 = _mm256_setzero_ps(), s1 = s0;
  int64_t i = 0;
  for (; i + 16 <= dim; i += 16) {
    const __m256 e0 = avx2::exp(_mm256_sub_ps(_mm256_loadu_ps(x + i), vm));
    const __m256 e1 = avx2::exp(_mm256_sub_ps(_mm256_loadu_ps(x + i + 8), vm));
    if constexpr (kStore) {
      _mm256_storeu_ps(y + i, e0);
      _mm256_storeu_ps(y + i + 8, e1);
    }
    s0 = _mm256_add_ps(s0, e0);
    s1 = _mm256_add_ps(s1, e1);
  }
  for (; i + 8 <= dim; i += 8) {
    const __m256 e = avx2::exp(_mm256_sub_ps(_mm256_loadu_ps(x + i), vm));
    if constexpr (kStore) _mm256_storeu_ps(y + i, e);
    s0 = _mm256_add_ps(s0, e);
  }
  if (i < dim) {
    const int64_t n = dim - i;
    const __m256i mask = avx2::tail_mask(n);
    const __m256 e = _mm256_and_ps(_mm256_castsi256_ps(mask),
                                   avx2::exp(_mm256_sub_ps(avx2::load_tail_f32(x + i, n), vm)));
    if constexpr (kStore) avx2::store_tail_f32(y + i, e, n);
    s1 = _mm256_add_ps(s1, e);
  }
  return avx2::hsum(_mm256_add_ps(s0, s1));
}

inline void scale_row(float* y, int64_t dim, float s) {
  const __m256 vs = _mm256_set1_ps(s);
  int64_t i = 0;
  for (; i + 8 <= dim; i += 8) _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_loadu_ps(y + i), vs));
  for (; i < dim; ++i) y[i] *= s;
}

inline void fill_row(float* y, int64_t dim, float v) {
  for (int64_t i = 0; i < dim; ++i) y[i] = v;
}

}  // namespace

void softmax_rows_avx2(
    const float* x, int64_t rows, int64_t dim, int64_t ldx, float* out, int64_t ldo) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * ldx;
    float* yr = out + r * ldo;
    const float m = row_max(xr, dim);
    if (m == kNegInf) {
      fill_row(yr, dim, 0.0f);
      continue;
    }
    const float s = exp_sum<true>(xr, dim, m, yr);
    scale_row(yr, dim, 1.0f / s);
  }
}

void log_softmax_rows_avx2(
    const float* x, int64_t rows, int64_t dim, int64_t ldx, float* out, int64_t ldo) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * ldx;
    float* yr = out + r * ldo;
    const float m = row_max(xr, dim);
    if (m == kNegInf) {
      fill_row(yr, dim, kNegInf);
      continue;
    }
    const float s = exp_sum<false>(xr, dim, m, nullptr);
    // (x - m) - log s keeps the precision of large logits (see softmax.cpp).
    const float log_s = __builtin_logf(s);
    const __m256 vm = _mm256_set1_ps(m), vl = _mm256_set1_ps(log_s);
    int64_t i = 0;
    for (; i + 8 <= dim; i += 8) {
      _mm256_storeu_ps(yr + i, _mm256_sub_ps(_mm256_sub_ps(_mm256_loadu_ps(xr + i), vm), vl));
    }
    for (; i < dim; ++i) yr[i] = (xr[i] - m) - log_s;
  }
}

}  // namespace lmx::cpu::detail
