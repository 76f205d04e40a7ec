// Internal (AVX2 translation units only): what the packed quantized matvec (quant_avx2.cpp)
// and the packed quantized GEMM (quant_gemm_avx2.cpp) both need: reading quantized values
// out of the packed layout (quant_pack.cpp) and rounding activations to int16 / int8.
#pragma once

#include <immintrin.h>

#include <cstdint>

#include "lmx/backend/cpu/gemm_avx2.h"
#include "lmx/backend/cpu/quantized.h"

namespace lmx {
class ThreadPool;
}  // namespace lmx

namespace lmx::cpu {
}

namespace lmx::cpu::detail {

// Prefill (m >= 4 rows of x): y = x @ dequant(W)^T (quant_gemm_avx2.cpp). A reduced
// activation precision (int16 or int8) takes the int16 path, any bits and group size.
void packed_gemm_avx2(const float* x,
                      int64_t ldx,
                      const PackedQuantWeight& w,
                      float* y,
                      int64_t ldy,
                      int64_t m,
                      ActivationPrecision activations,
                      ThreadPool& pool);

// The quantized values q (0 .. 2^bits - 1, as int32 lanes) of packed row `row` at inputs
// [p, p + 8), p a multiple of 8. All index arithmetic is shifts (unit sizes are powers of
// two). 8-bit planes hold q - 128 as signed bytes.
inline __m256i packed_q8(const PackedQuantWeight& w, int64_t row, int64_t p) {
  constexpr int R = PackedQuantWeight::kRows;
  const uint8_t* block = w.data() + (row >> 2) * w.block_bytes();
  const int64_t rr = row & 3, c = p >> 3;
  if (w.num_planes() == 1 && w.plane_bits(0) == 8) {
    const uint8_t* src = block + w.plane_offset(0) + (c >> 2) * 32 * R + rr * 32 + (c & 3) * 8;
    return _mm256_add_epi32(
        _mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(src))),
        _mm256_set1_epi32(128));
  }
  __m256i q = _mm256_setzero_si256();
  for (int pl = 0; pl < w.num_planes(); ++pl) {
    const int b = w.plane_bits(pl);
    const int pshift = 5 - __builtin_ctz(static_cast<unsigned>(b));  // log2(32 / b)
    const int64_t u = c >> pshift;
    const int pos = static_cast<int>(c & ((int64_t{1} << pshift) - 1));
    const __m256i v = _mm256_load_si256(
        reinterpret_cast<const __m256i*>(block + w.plane_offset(pl) + (u * R + rr) * 32));
    __m256i t = _mm256_srl_epi32(v, _mm_cvtsi32_si128(b * pos));
    t = _mm256_and_si256(t, _mm256_set1_epi32((1 << b) - 1));
    q = _mm256_or_si256(q, _mm256_sll_epi32(t, _mm_cvtsi32_si128(w.plane_shift(pl))));
  }
  return q;
}

// Sum of gs inputs (gs a multiple of 8): the bias term's sum(x) of one group.
inline float group_sum(const float* x, int64_t gs) {
  __m256 s = _mm256_setzero_ps();
  for (int64_t j = 0; j < gs; j += 8) s = _mm256_add_ps(s, _mm256_loadu_ps(x + j));
  return avx2::hsum(s);
}

// max |x[j]| over gs inputs (gs a multiple of 8): a quantization group's range.
inline float group_amax(const float* x, int64_t gs) {
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  __m256 m = _mm256_setzero_ps();
  for (int64_t j = 0; j < gs; j += 8)
    m = _mm256_max_ps(m, _mm256_and_ps(_mm256_loadu_ps(x + j), abs_mask));
  __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
  m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
  return _mm_cvtss_f32(_mm_max_ss(m4, _mm_movehdup_ps(m4)));
}

// Rounds gs inputs (gs a multiple of 16) to int16 with one scale d = amax / 32767:
// out[j] = round-to-nearest-even(x[j] / d), |out[j]| <= 32767. Returns d (0 for an all-zero
// group). out must be 32-byte aligned.
inline float quantize_group_int16(const float* x, int64_t gs, int16_t* out) {
  const float amax = group_amax(x, gs);
  const __m256 inv = _mm256_set1_ps(amax > 0.0f ? 32767.0f / amax : 0.0f);
  for (int64_t j = 0; j < gs; j += 16) {
    const __m256i a = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + j), inv));
    const __m256i b = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + j + 8), inv));
    _mm256_store_si256(reinterpret_cast<__m256i*>(out + j),
                       _mm256_permute4x64_epi64(_mm256_packs_epi32(a, b), 0xD8));
  }
  return amax / 32767.0f;
}

// Rounds gs inputs (gs a multiple of 32) to int8 with one scale d = amax / 127:
// out[j] = round-to-nearest-even(x[j] / d) (x[j] * (127 / amax) rounded as lrint rounds it),
// in input order. Returns d (0 for an all-zero group).
inline float quantize_group_int8(const float* x, int64_t gs, int8_t* out) {
  const float amax = group_amax(x, gs);
  const __m256 inv = _mm256_set1_ps(amax > 0.0f ? 127.0f / amax : 0.0f);
  const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  for (int64_t j = 0; j < gs; j += 32) {
    __m256i v[4];
    for (int t = 0; t < 4; ++t)
      v[t] = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + j + 8 * t), inv));
    // packs work per 128-bit lane: 32-bit groups of 4 come out as a0 b0 c0 d0 a1 b1 c1 d1.
    const __m256i bytes =
        _mm256_packs_epi16(_mm256_packs_epi32(v[0], v[1]), _mm256_packs_epi32(v[2], v[3]));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + j),
                        _mm256_permutevar8x32_epi32(bytes, order));
  }
  return amax / 127.0f;
}

}  // namespace lmx::cpu::detail
