// The AVX2/FMA/F16C lane set (F32x8) of the width-generic NN kernels and vector math
// (vec_math.h: exp, log1p, tanh, sigmoid, erfc, ...), and loads that widen f16/bf16 to f32.
//
// Include ONLY from *_avx2.cpp files (compiled with -mavx2 -mfma -mf16c) and call
// only after cpu_features().use_avx2(). Everything here has internal linkage (`static
// inline`, or in an unnamed namespace) and the AVX2 files use no std:: templates, so no AVX2-compiled copy of a shared inline
// function can be picked by the linker for a scalar caller.
#pragma once

#include <immintrin.h>

#include <cstdint>

#define LMX_SIMD_TARGET
#include "lmx/backend/cpu/vec_math.h"
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

// The AVX2 lane set of the width-generic kernels (vec_math.h lists what it provides): 8 f32
// lanes, a predicate as all-ones lanes.
namespace {
struct F32x8 {
  using Reg = __m256;
  using Mask = __m256;
  static constexpr int kLanes = 8;
  static Reg zero() { return _mm256_setzero_ps(); }
  static Reg set1(float v) { return _mm256_set1_ps(v); }
  static Reg load(const float* p) { return _mm256_loadu_ps(p); }
  static void store(float* p, Reg v) { _mm256_storeu_ps(p, v); }
  static Reg load_tail(const float* p, int64_t n) { return load_tail_f32(p, n); }
  static void store_tail(float* p, Reg v, int64_t n) { store_tail_f32(p, v, n); }
  static Reg load_tail_or(const float* p, int64_t n, Reg fill) {
    const __m256i m = tail_mask(n);
    return _mm256_blendv_ps(fill, _mm256_maskload_ps(p, m), _mm256_castsi256_ps(m));
  }
  static Reg zero_tail(Reg v, int64_t n) {
    return _mm256_and_ps(_mm256_castsi256_ps(tail_mask(n)), v);
  }
  static Reg blend_tail(int64_t n, Reg v, Reg old) {
    return _mm256_blendv_ps(old, v, _mm256_castsi256_ps(tail_mask(n)));
  }
  template <Dtype D>
  static Reg load_as(const void* base, int64_t i) {
    return load8<D>(base, i);
  }
  template <Dtype D>
  static Reg load_tail_as(const void* base, int64_t i, int64_t n) {
    return avx2::load_tail<D>(base, i, n);
  }
  static Reg add(Reg a, Reg b) { return _mm256_add_ps(a, b); }
  static Reg sub(Reg a, Reg b) { return _mm256_sub_ps(a, b); }
  static Reg mul(Reg a, Reg b) { return _mm256_mul_ps(a, b); }
  static Reg div(Reg a, Reg b) { return _mm256_div_ps(a, b); }
  static Reg min(Reg a, Reg b) { return _mm256_min_ps(a, b); }
  static Reg max(Reg a, Reg b) { return _mm256_max_ps(a, b); }
  static Reg fmadd(Reg a, Reg b, Reg c) { return _mm256_fmadd_ps(a, b, c); }
  static Reg fmsub(Reg a, Reg b, Reg c) { return _mm256_fmsub_ps(a, b, c); }
  static Reg fnmadd(Reg a, Reg b, Reg c) { return _mm256_fnmadd_ps(a, b, c); }
  static Reg fmaddsub(Reg a, Reg b, Reg c) { return _mm256_fmaddsub_ps(a, b, c); }
  static Reg abs(Reg x) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), x); }
  static Reg or_sign(Reg a, Reg x) {
    return _mm256_or_ps(a, _mm256_and_ps(_mm256_set1_ps(-0.0f), x));
  }
  static Mask lt(Reg a, Reg b) { return _mm256_cmp_ps(a, b, _CMP_LT_OQ); }
  static Mask gt(Reg a, Reg b) { return _mm256_cmp_ps(a, b, _CMP_GT_OQ); }
  static Mask eq(Reg a, Reg b) { return _mm256_cmp_ps(a, b, _CMP_EQ_OQ); }
  static Reg select(Mask m, Reg t, Reg f) { return _mm256_blendv_ps(f, t, m); }
  static Reg round(Reg x) {
    return _mm256_round_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  }
  // 2^n = 2^a * 2^b with a = n >> 1, b = n - a, each a normal power of two: p * 2^a is
  // exact, so the result is rounded once.
  static Reg scale_pow2(Reg p, Reg n) {
    const __m256i ni = _mm256_cvtps_epi32(n);
    const __m256i a = _mm256_srai_epi32(ni, 1);
    const __m256i b = _mm256_sub_epi32(ni, a);
    const __m256i bias = _mm256_set1_epi32(127);
    const __m256 sa = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(a, bias), 23));
    const __m256 sb = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(b, bias), 23));
    return _mm256_mul_ps(_mm256_mul_ps(p, sa), sb);
  }
  static float hsum(Reg v) { return avx2::hsum(v); }
  static float hmax(Reg v) { return avx2::hmax(v); }
  static Reg dup_pairs_lo(Reg v) {
    return _mm256_permutevar8x32_ps(v, _mm256_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3));
  }
  static Reg dup_pairs_hi(Reg v) {
    return _mm256_permutevar8x32_ps(v, _mm256_setr_epi32(4, 4, 5, 5, 6, 6, 7, 7));
  }
  static Reg swap_pairs(Reg v) { return _mm256_permute_ps(v, 0xB1); }
  // Lane l takes lane l ^ K (K = 4, 2, 1).
  template <int K>
  static Reg xor_lanes(Reg x) {
    static_assert(K == 4 || K == 2 || K == 1);
    if constexpr (K == 4)
      return _mm256_permute2f128_ps(x, x, 1);
    else if constexpr (K == 2)
      return _mm256_permute_ps(x, 0x4E);
    else
      return _mm256_permute_ps(x, 0xB1);
  }
  // Lane i = the sum of a[i]'s lanes, for i < 8.
  static Reg transpose_sum(const Reg* a) {
    const __m256 t0 = _mm256_hadd_ps(a[0], a[1]), t1 = _mm256_hadd_ps(a[2], a[3]);
    const __m256 t2 = _mm256_hadd_ps(a[4], a[5]), t3 = _mm256_hadd_ps(a[6], a[7]);
    const __m256 u0 = _mm256_hadd_ps(t0, t1), u1 = _mm256_hadd_ps(t2, t3);
    return _mm256_add_ps(_mm256_permute2f128_ps(u0, u1, 0x20), _mm256_permute2f128_ps(u0, u1, 0x31));
  }
};
}  // namespace

}  // namespace lmx::cpu::avx2
