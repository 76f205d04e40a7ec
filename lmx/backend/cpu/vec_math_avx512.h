// The AVX-512 lane set (F32x16) of the width-generic NN kernels and vector math
// (vec_math.h): 16 f32 lanes, predicates and partial lane sets as __mmask16 (masked loads
// and stores: no scalar remainders, no reads or writes past the end of a row).
//
// Include ONLY from *_avx512.cpp files, after avx512_target.h (so that the AVX-512 target
// covers every function here and the generic kernels instantiated with F32x16), with the
// headers that this one, vec_math.h and the generic kernel include (<immintrin.h>,
// <cstddef>, <cstdint>, lmx/core/dtype.h, the kernel's entry header) included before the
// region; call only after cpu_features().use_avx512(). Everything here has internal linkage.
#pragma once

#include <immintrin.h>

#include <cstdint>

#define LMX_SIMD_TARGET __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx512vnni")))
#include "lmx/backend/cpu/vec_math.h"
#include "lmx/core/dtype.h"

namespace lmx::cpu::avx512 {

namespace {
struct F32x16 {
  using Reg = __m512;
  using Mask = __mmask16;
  static constexpr int kLanes = 16;
  // The first n (0..16) lanes.
  static __mmask16 tail_mask(int64_t n) { return static_cast<__mmask16>((1u << n) - 1u); }
  static Reg zero() { return _mm512_setzero_ps(); }
  static Reg set1(float v) { return _mm512_set1_ps(v); }
  static Reg load(const float* p) { return _mm512_loadu_ps(p); }
  static void store(float* p, Reg v) { _mm512_storeu_ps(p, v); }
  static Reg load_tail(const float* p, int64_t n) { return _mm512_maskz_loadu_ps(tail_mask(n), p); }
  static void store_tail(float* p, Reg v, int64_t n) { _mm512_mask_storeu_ps(p, tail_mask(n), v); }
  static Reg load_tail_or(const float* p, int64_t n, Reg fill) {
    return _mm512_mask_loadu_ps(fill, tail_mask(n), p);
  }
  static Reg zero_tail(Reg v, int64_t n) { return _mm512_maskz_mov_ps(tail_mask(n), v); }
  static Reg blend_tail(int64_t n, Reg v, Reg old) {
    return _mm512_mask_mov_ps(old, tail_mask(n), v);
  }
  // 16 bf16 / f16 values widened to f32 (bf16: the bits shifted into the high half).
  static Reg widen(__m256i h, Dtype d) {
    if (d == Dtype::f16) return _mm512_cvtph_ps(h);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
  }
  template <Dtype D>
  LMX_SIMD_TARGET static Reg load_as(const void* base, int64_t i) {
    if constexpr (D == Dtype::f32) {
      return _mm512_loadu_ps(static_cast<const float*>(base) + i);
    } else {
      return widen(_mm256_loadu_si256(
                       reinterpret_cast<const __m256i*>(static_cast<const uint16_t*>(base) + i)),
                   D);
    }
  }
  template <Dtype D>
  LMX_SIMD_TARGET static Reg load_tail_as(const void* base, int64_t i, int64_t n) {
    if constexpr (D == Dtype::f32) {
      return load_tail(static_cast<const float*>(base) + i, n);
    } else {
      return widen(_mm256_maskz_loadu_epi16(tail_mask(n), static_cast<const uint16_t*>(base) + i),
                   D);
    }
  }
  static Reg add(Reg a, Reg b) { return _mm512_add_ps(a, b); }
  static Reg sub(Reg a, Reg b) { return _mm512_sub_ps(a, b); }
  static Reg mul(Reg a, Reg b) { return _mm512_mul_ps(a, b); }
  static Reg div(Reg a, Reg b) { return _mm512_div_ps(a, b); }
  static Reg min(Reg a, Reg b) { return _mm512_min_ps(a, b); }
  static Reg max(Reg a, Reg b) { return _mm512_max_ps(a, b); }
  static Reg fmadd(Reg a, Reg b, Reg c) { return _mm512_fmadd_ps(a, b, c); }
  static Reg fmsub(Reg a, Reg b, Reg c) { return _mm512_fmsub_ps(a, b, c); }
  static Reg fnmadd(Reg a, Reg b, Reg c) { return _mm512_fnmadd_ps(a, b, c); }
  static Reg fmaddsub(Reg a, Reg b, Reg c) { return _mm512_fmaddsub_ps(a, b, c); }
  static Reg abs(Reg x) { return _mm512_abs_ps(x); }
  static Reg or_sign(Reg a, Reg x) {
    return _mm512_or_ps(a, _mm512_and_ps(_mm512_set1_ps(-0.0f), x));
  }
  static Mask lt(Reg a, Reg b) { return _mm512_cmp_ps_mask(a, b, _CMP_LT_OQ); }
  static Mask gt(Reg a, Reg b) { return _mm512_cmp_ps_mask(a, b, _CMP_GT_OQ); }
  static Mask eq(Reg a, Reg b) { return _mm512_cmp_ps_mask(a, b, _CMP_EQ_OQ); }
  static Reg select(Mask m, Reg t, Reg f) { return _mm512_mask_blend_ps(m, f, t); }
  static Reg round(Reg x) {
    return _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  }
  // vscalefps: p * 2^n rounded once, subnormal and overflowing results included.
  static Reg scale_pow2(Reg p, Reg n) { return _mm512_scalef_ps(p, n); }
  static float hsum(Reg v) { return _mm512_reduce_add_ps(v); }
  static float hmax(Reg v) { return _mm512_reduce_max_ps(v); }
  static Reg dup_pairs_lo(Reg v) {
    return _mm512_permutexvar_ps(_mm512_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7),
                                 v);
  }
  static Reg dup_pairs_hi(Reg v) {
    return _mm512_permutexvar_ps(
        _mm512_setr_epi32(8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13, 14, 14, 15, 15), v);
  }
  static Reg swap_pairs(Reg v) { return _mm512_permute_ps(v, 0xB1); }
  // Lane l takes lane l ^ K (K = 8, 4, 2, 1).
  template <int K>
  LMX_SIMD_TARGET static Reg xor_lanes(Reg x) {
    static_assert(K == 8 || K == 4 || K == 2 || K == 1);
    if constexpr (K == 8)
      return _mm512_shuffle_f32x4(x, x, 0x4E);
    else if constexpr (K == 4)
      return _mm512_shuffle_f32x4(x, x, 0xB1);
    else if constexpr (K == 2)
      return _mm512_permute_ps(x, 0x4E);
    else
      return _mm512_permute_ps(x, 0xB1);
  }
  // Lane i = the sum of a[i]'s lanes, for i < 16: three levels of pairwise folds (128-bit
  // blocks, then blocks, then lanes within blocks) leave the sum of a[4k + j] in lane
  // 4j + k; one permutation puts it in lane 4k + j.
  static Reg transpose_sum(const Reg* a) {
    __m512 c[8], e[4];
    for (int p = 0; p < 8; ++p) {  // [a(B0+B2), a(B1+B3), b(B0+B2), b(B1+B3)]
      c[p] = _mm512_add_ps(_mm512_shuffle_f32x4(a[2 * p], a[2 * p + 1], 0x44),
                           _mm512_shuffle_f32x4(a[2 * p], a[2 * p + 1], 0xEE));
    }
    for (int q = 0; q < 4; ++q) {  // block j: a[4q + j]'s 4 partial sums
      e[q] = _mm512_add_ps(_mm512_shuffle_f32x4(c[2 * q], c[2 * q + 1], 0x88),
                           _mm512_shuffle_f32x4(c[2 * q], c[2 * q + 1], 0xDD));
    }
    const __m512 t0 = _mm512_add_ps(_mm512_unpacklo_ps(e[0], e[1]), _mm512_unpackhi_ps(e[0], e[1]));
    const __m512 t1 = _mm512_add_ps(_mm512_unpacklo_ps(e[2], e[3]), _mm512_unpackhi_ps(e[2], e[3]));
    const __m512 u =
        _mm512_add_ps(_mm512_shuffle_ps(t0, t1, 0x44), _mm512_shuffle_ps(t0, t1, 0xEE));
    return _mm512_permutexvar_ps(
        _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15), u);
  }
};
}  // namespace

}  // namespace lmx::cpu::avx512
