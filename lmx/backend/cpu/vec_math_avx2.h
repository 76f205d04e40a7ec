// AVX2/FMA/F16C vector math shared by the NN kernels: exp, log1p, tanh, sigmoid,
// erfc, and loads that widen f16/bf16 to f32.
//
// Include ONLY from *_avx2.cpp files (compiled with -mavx2 -mfma -mf16c) and call
// only after cpu_features().use_avx2(). Everything here is `static inline` and the
// AVX2 files use no std:: templates, so no AVX2-compiled copy of a shared inline
// function can be picked by the linker for a scalar caller.
//
// Polynomial coefficients were fitted for lmx (mpmath Chebyshev fits, rounded to f32);
// accuracies are checked against double-precision references in
// tests/backend/cpu/vec_math_test.cpp.
#pragma once

#include <immintrin.h>

#include <cstdint>

#include "lmx/core/dtype.h"

namespace lmx::cpu::avx2 {

// Lane mask with the first n (0..8) lanes set.
static inline __m256i tail_mask(int64_t n) {
  static const int32_t kTable[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(kTable + 8 - n));
}
static inline __m256 load_tail_f32(const float* p, int64_t n) {
  return _mm256_maskload_ps(p, tail_mask(n));
}
static inline void store_tail_f32(float* p, __m256 v, int64_t n) {
  _mm256_maskstore_ps(p, tail_mask(n), v);
}

static inline __m256 load_f16x8(const uint16_t* p) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}
static inline __m256 load_bf16x8(const uint16_t* p) {
  const __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  return _mm256_castsi256_ps(_mm256_slli_epi32(w, 16));
}

// Eight elements of an f32 / f16 / bf16 array from index i, widened to f32.
template <Dtype D>
static inline __m256 load8(const void* base, int64_t i) {
  if constexpr (D == Dtype::f16)
    return load_f16x8(static_cast<const uint16_t*>(base) + i);
  else if constexpr (D == Dtype::bf16)
    return load_bf16x8(static_cast<const uint16_t*>(base) + i);
  else
    return _mm256_loadu_ps(static_cast<const float*>(base) + i);
}
// The first n (< 8) elements from index i; the other lanes are 0.
template <Dtype D>
static inline __m256 load_tail(const void* base, int64_t i, int64_t n) {
  if constexpr (D == Dtype::f32) {
    return load_tail_f32(static_cast<const float*>(base) + i, n);
  } else {
    alignas(16) uint16_t buf[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    const uint16_t* p = static_cast<const uint16_t*>(base) + i;
    for (int64_t k = 0; k < n; ++k) buf[k] = p[k];
    return load8<D>(buf, 0);
  }
}

// Horizontal sum of the 8 lanes.
static inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
static inline float hmax(__m256 v) {
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  s = _mm_max_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// e^x, within ~1 ulp of the correctly rounded result for x in [-87.3, 88.7] (normal
// results); smaller results are computed as (correctly scaled) subnormals or 0,
// larger ones give +inf; exp(-inf) = 0, NaN stays NaN.
// Method: x = n*ln2 + r with |r| <= ln2/2 (Cody-Waite, two-part ln2 with FMA),
// e^r = 1 + r + r^2 P(r) (degree-5 P), and 2^n applied as two exact power-of-two
// factors so that n in [-150, 128] never overflows the exponent field.
static inline __m256 exp(__m256 x) {
  // Operand order keeps NaN: max/min return the second operand when one is NaN.
  x = _mm256_min_ps(_mm256_set1_ps(88.8f), _mm256_max_ps(_mm256_set1_ps(-104.0f), x));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693145751953125f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(1.42860682030941723e-06f), r);
  __m256 p = _mm256_set1_ps(1.989098091e-04f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.393364160e-03f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.333310485e-03f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.166646674e-02f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.666666716e-01f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.000000000e-01f));
  const __m256 r2 = _mm256_mul_ps(r, r);
  p = _mm256_fmadd_ps(p, r2, _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
  // 2^n = 2^a * 2^b with a = n >> 1, b = n - a, each a normal power of two.
  const __m256i ni = _mm256_cvtps_epi32(n);
  const __m256i a = _mm256_srai_epi32(ni, 1);
  const __m256i b = _mm256_sub_epi32(ni, a);
  const __m256i bias = _mm256_set1_epi32(127);
  const __m256 sa = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(a, bias), 23));
  const __m256 sb = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(b, bias), 23));
  return _mm256_mul_ps(_mm256_mul_ps(p, sa), sb);
}

// 1 / (1 + e^-x), accurate to a few ulp (division, no reciprocal estimate).
static inline __m256 sigmoid(__m256 x) {
  const __m256 one = _mm256_set1_ps(1.0f);
  const __m256 e = exp(_mm256_sub_ps(_mm256_setzero_ps(), x));
  return _mm256_div_ps(one, _mm256_add_ps(one, e));
}

// x / (1 + e^-x).
static inline __m256 silu(__m256 x) {
  const __m256 e = exp(_mm256_sub_ps(_mm256_setzero_ps(), x));
  return _mm256_div_ps(x, _mm256_add_ps(_mm256_set1_ps(1.0f), e));
}

// tanh(x): odd polynomial for |x| < 0.625 (keeps relative accuracy near 0), else
// sign(x) * (1 - 2 / (e^{2|x|} + 1)), which saturates to +-1 without overflow.
static inline __m256 tanh(__m256 x) {
  const __m256 sign_mask = _mm256_set1_ps(-0.0f);
  const __m256 ax = _mm256_andnot_ps(sign_mask, x);
  const __m256 z = _mm256_mul_ps(x, x);
  __m256 p = _mm256_set1_ps(-6.096714176e-03f);
  p = _mm256_fmadd_ps(p, z, _mm256_set1_ps(2.099717967e-02f));
  p = _mm256_fmadd_ps(p, z, _mm256_set1_ps(-5.385090783e-02f));
  p = _mm256_fmadd_ps(p, z, _mm256_set1_ps(1.333276927e-01f));
  p = _mm256_fmadd_ps(p, z, _mm256_set1_ps(-3.333332837e-01f));
  const __m256 small = _mm256_fmadd_ps(_mm256_mul_ps(p, z), x, x);
  const __m256 e = exp(_mm256_add_ps(ax, ax));
  const __m256 one = _mm256_set1_ps(1.0f);
  __m256 large = _mm256_sub_ps(one, _mm256_div_ps(_mm256_set1_ps(2.0f), _mm256_add_ps(e, one)));
  large = _mm256_or_ps(large, _mm256_and_ps(sign_mask, x));
  const __m256 is_small = _mm256_cmp_ps(ax, _mm256_set1_ps(0.625f), _CMP_LT_OQ);
  return _mm256_blendv_ps(large, small, is_small);
}

// log1p(e) for e in [0, 1] (softplus's log1p(exp(-|x|))), ~1-2 ulp.
// u = 1 + e is split as 2^k * m with m in [sqrt(1/2), sqrt(2)); log m = 2 atanh(f),
// f = (m - 1) / (m + 1); the rounding of u is undone by the factor e / (u - 1).
static inline __m256 log1p_unit(__m256 e) {
  const __m256 one = _mm256_set1_ps(1.0f);
  const __m256 u = _mm256_add_ps(one, e);
  const __m256 big = _mm256_cmp_ps(u, _mm256_set1_ps(1.41421356f), _CMP_GT_OQ);
  const __m256 m = _mm256_blendv_ps(u, _mm256_mul_ps(u, _mm256_set1_ps(0.5f)), big);
  const __m256 k_ln2 = _mm256_and_ps(big, _mm256_set1_ps(0.693147180559945309f));
  const __m256 f = _mm256_div_ps(_mm256_sub_ps(m, one), _mm256_add_ps(m, one));
  const __m256 w = _mm256_mul_ps(f, f);
  __m256 p = _mm256_set1_ps(2.333046794e-01f);
  p = _mm256_fmadd_ps(p, w, _mm256_set1_ps(2.855082154e-01f));
  p = _mm256_fmadd_ps(p, w, _mm256_set1_ps(4.000012279e-01f));
  p = _mm256_fmadd_ps(p, w, _mm256_set1_ps(6.666666865e-01f));
  // log m = 2f + f^3 P(f^2)
  const __m256 logm = _mm256_fmadd_ps(_mm256_mul_ps(p, w), f, _mm256_add_ps(f, f));
  const __m256 logu = _mm256_add_ps(k_ln2, logm);
  const __m256 um1 = _mm256_sub_ps(u, one);
  const __m256 exact = _mm256_cmp_ps(um1, _mm256_setzero_ps(), _CMP_EQ_OQ);
  const __m256 corrected = _mm256_mul_ps(logu, _mm256_div_ps(e, _mm256_blendv_ps(um1, one, exact)));
  return _mm256_blendv_ps(corrected, e, exact);
}

// log(1 + e^x), stable: max(x, 0) + log1p(e^-|x|).
static inline __m256 softplus(__m256 x) {
  const __m256 ax = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), x);
  const __m256 e = exp(_mm256_sub_ps(_mm256_setzero_ps(), ax));
  return _mm256_add_ps(_mm256_max_ps(x, _mm256_setzero_ps()), log1p_unit(e));
}

// erfc(t) for t >= 0 with ~1e-7 relative accuracy while the result is normal.
// t < 1: 1 - t P(t^2). t >= 1: e^{-t^2} R(1/t), R fitted on 1/t in [0.09, 1] (for
// larger t, e^{-t^2} underflows to 0 anyway); t^2 is split exactly with FMA so the
// exponential does not inherit its rounding error.
static inline __m256 erfc_nonneg(__m256 t) {
  const __m256 one = _mm256_set1_ps(1.0f);
  const __m256 u = _mm256_mul_ps(t, t);
  __m256 p = _mm256_set1_ps(7.875874871e-05f);
  p = _mm256_fmadd_ps(p, u, _mm256_set1_ps(-8.016864303e-04f));
  p = _mm256_fmadd_ps(p, u, _mm256_set1_ps(5.189087242e-03f));
  p = _mm256_fmadd_ps(p, u, _mm256_set1_ps(-2.685421146e-02f));
  p = _mm256_fmadd_ps(p, u, _mm256_set1_ps(1.128359437e-01f));
  p = _mm256_fmadd_ps(p, u, _mm256_set1_ps(-3.761262596e-01f));
  p = _mm256_fmadd_ps(p, u, _mm256_set1_ps(1.128379107e+00f));
  const __m256 small = _mm256_fnmadd_ps(p, t, one);

  // Beyond t = 10.5 the result underflows to 0; clamping keeps t^2 finite.
  const __m256 tl = _mm256_min_ps(_mm256_max_ps(t, one), _mm256_set1_ps(10.5f));
  const __m256 s = _mm256_max_ps(_mm256_div_ps(one, tl), _mm256_set1_ps(0.09f));
  // v maps s in [0.09, 1] onto [-1, 1] to keep the polynomial well conditioned.
  const __m256 v = _mm256_fmadd_ps(s, _mm256_set1_ps(2.197802305f), _mm256_set1_ps(-1.197802186f));
  __m256 r = _mm256_set1_ps(2.162835335e-05f);
  r = _mm256_fmadd_ps(r, v, _mm256_set1_ps(-2.193880573e-05f));
  r = _mm256_fmadd_ps(r, v, _mm256_set1_ps(-8.027753211e-05f));
  r = _mm256_fmadd_ps(r, v, _mm256_set1_ps(2.045259171e-04f));
  r = _mm256_fmadd_ps(r, v, _mm256_set1_ps(-2.596165577e-04f));
  r = _mm256_fmadd_ps(r, v, _mm256_set1_ps(1.030800340e-04f));
  r = _mm256_fmadd_ps(r, v, _mm256_set1_ps(9.652880253e-04f));
  r = _mm256_fmadd_ps(r, v, _mm256_set1_ps(-4.206322134e-03f));
  r = _mm256_fmadd_ps(r, v, _mm256_set1_ps(9.448788129e-03f));
  r = _mm256_fmadd_ps(r, v, _mm256_set1_ps(-4.524718970e-03f));
  r = _mm256_fmadd_ps(r, v, _mm256_set1_ps(-7.726994157e-02f));
  r = _mm256_fmadd_ps(r, v, _mm256_set1_ps(5.032030940e-01f));
  // R(s) = erfc(1/s) e^{1/s^2} / s, so erfc(t) = e^{-t^2} * s * R(s).
  const __m256 hi = _mm256_mul_ps(tl, tl);
  const __m256 lo = _mm256_fmsub_ps(tl, tl, hi);  // t^2 = hi + lo exactly
  const __m256 e = _mm256_mul_ps(exp(_mm256_sub_ps(_mm256_setzero_ps(), hi)),
                                 _mm256_fnmadd_ps(lo, one, one));  // e^{-lo} ~ 1 - lo
  const __m256 large = _mm256_mul_ps(e, _mm256_mul_ps(s, r));
  return _mm256_blendv_ps(large, small, _mm256_cmp_ps(t, one, _CMP_LT_OQ));
}

// gelu(x) = x/2 * (1 + erf(x/sqrt2)) = x/2 * erfc(-x/sqrt2), with relative accuracy
// kept for negative x (where 1 + erf cancels).
static inline __m256 gelu_erf(__m256 x) {
  const __m256 z = _mm256_mul_ps(x, _mm256_set1_ps(0.707106781186547524f));
  const __m256 t = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), z);
  const __m256 c = erfc_nonneg(t);
  const __m256 neg = _mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_LT_OQ);
  const __m256 cdf2 = _mm256_blendv_ps(_mm256_sub_ps(_mm256_set1_ps(2.0f), c), c, neg);
  return _mm256_mul_ps(_mm256_mul_ps(x, _mm256_set1_ps(0.5f)), cdf2);
}

// gelu with the tanh approximation: x/2 (1 + tanh(u)) = x * sigmoid(2u),
// u = sqrt(2/pi) (x + 0.044715 x^3). The sigmoid form has no cancellation.
static inline __m256 gelu_tanh(__m256 x) {
  const __m256 x3 = _mm256_mul_ps(_mm256_mul_ps(x, x), x);
  const __m256 u = _mm256_mul_ps(_mm256_set1_ps(0.797884560802865356f),
                                 _mm256_fmadd_ps(x3, _mm256_set1_ps(0.044715f), x));
  const __m256 e = exp(_mm256_mul_ps(u, _mm256_set1_ps(-2.0f)));
  return _mm256_div_ps(x, _mm256_add_ps(_mm256_set1_ps(1.0f), e));
}

}  // namespace lmx::cpu::avx2
