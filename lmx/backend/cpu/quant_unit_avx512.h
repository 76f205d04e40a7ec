// Internal, AVX-512 translation units only (include it right after avx512_target.h, so its
// functions are compiled for AVX-512): 16 rows of the packed layout read as dword columns.
// A unit of the packed layout (64 inputs at 4 bits, 32 at 8) is 32 bytes = 8 dwords per W
// row, 4 rows (one block) contiguous, so 16 rows are 8 zmm loads; a 16 x 8 dword transpose
// turns them into z[l], dword l of the 16 rows in lane order. Used by the GEMM's B packer
// (quant_gemm_avx512.cpp) and the int8 few-row kernel (quant_rows_avx512.cpp).
#pragma once

#include <immintrin.h>

#include <cstdint>

#include "lmx/backend/cpu/quantized.h"

namespace lmx::cpu::detail {

// Index vectors of the transpose's three vpermt2d stages (see transpose_16x8).
struct TransposeIndex {
  alignas(64) int32_t v[3][2][16];
};
constexpr TransposeIndex make_transpose_index() {
  TransposeIndex t{};
  for (int v = 0; v < 2; ++v)
    for (int q = 0; q < 16; ++q) {
      const int c4 = q / 4, c2 = q / 2;
      t.v[0][v][q] = c4 / 2 * 16 + c4 % 2 * 8 + 4 * v + q % 4;
      t.v[1][v][q] = c2 / 4 * 16 + c2 % 4 * 4 + 2 * v + q % 2;
      t.v[2][v][q] = q / 8 * 16 + q % 8 * 2 + v;
    }
  return t;
}
inline constexpr TransposeIndex kTransposeIndex = make_transpose_index();

// in[i]: dwords 0-7 of column 2i, then of column 2i + 1. z[l]: dword l of column c in lane c.
// Stage 1 gathers 4 columns x 4 dwords, stage 2 8 x 2, stage 3 16 x 1.
inline void transpose_16x8(const __m512i (&in)[8], __m512i (&z)[8]) {
  __m512i idx[3][2];
  for (int st = 0; st < 3; ++st)
    for (int v = 0; v < 2; ++v) idx[st][v] = _mm512_load_si512(kTransposeIndex.v[st][v]);
  __m512i s1[4][2], s2[2][2][2];
  for (int c = 0; c < 4; ++c)
    for (int h = 0; h < 2; ++h)
      s1[c][h] = _mm512_permutex2var_epi32(in[2 * c], idx[0][h], in[2 * c + 1]);
  for (int d = 0; d < 2; ++d)
    for (int h = 0; h < 2; ++h)
      for (int g = 0; g < 2; ++g)
        s2[d][h][g] = _mm512_permutex2var_epi32(s1[2 * d][h], idx[1][g], s1[2 * d + 1][h]);
  for (int h = 0; h < 2; ++h)
    for (int g = 0; g < 2; ++g)
      for (int o = 0; o < 2; ++o)
        z[4 * h + 2 * g + o] = _mm512_permutex2var_epi32(s2[0][h][g], idx[2][o], s2[1][h][g]);
}

// z[l] of unit u for the columns j0 .. j0 + nr (j0 a multiple of 4, columns >= nr zero).
inline void load_unit(const PackedQuantWeight& w, int64_t j0, int nr, int64_t u, __m512i (&z)[8]) {
  constexpr int R = PackedQuantWeight::kRows;
  __m512i in[8];
  for (int i = 0; i < 8; ++i) {
    const int c = 2 * i;  // rows c, c + 1 of the sliver: rows 0-1 or 2-3 of one block
    if (c >= nr) {
      in[i] = _mm512_setzero_si512();
      continue;
    }
    const uint8_t* src = w.data() + ((j0 + c) >> 2) * w.block_bytes() + w.plane_offset(0) +
                         (u * R + ((j0 + c) & 3)) * 32;
    in[i] = _mm512_maskz_loadu_epi32(c + 1 < nr ? 0xffff : 0x00ff, src);
  }
  transpose_16x8(in, z);
}

// s[g, j] and b[g, j] of the sliver's 16 columns as f32 at dst (16 each), zero past nr.
inline void pack_scales_avx512(float* dst, const PackedQuantWeight& w, int64_t j0, int nr, int64_t g) {
  constexpr int R = PackedQuantWeight::kRows;
  const Dtype dt = w.scale_dtype();
  const int64_t size = dt == Dtype::f32 ? 4 : 2;
  for (int which = 0; which < 2; ++which) {
    const int64_t off = (which == 0 ? w.scales_offset() : w.biases_offset()) + g * R * size;
    // Gathered through memory: _mm512_insertf32x4 needs a constant lane (clang refuses a
    // loop index that g++ folds only after unrolling).
    alignas(64) float lanes[16] = {};
    for (int b = 0; b < 4 && 4 * b < nr; ++b) {
      const uint8_t* src = w.data() + ((j0 + 4 * b) >> 2) * w.block_bytes() + off;
      __m128 f;
      if (dt == Dtype::f32) {
        f = _mm_loadu_ps(reinterpret_cast<const float*>(src));
      } else {
        const __m128i h = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(src));
        f = dt == Dtype::f16 ? _mm_cvtph_ps(h)
                             : _mm_castsi128_ps(_mm_slli_epi32(_mm_cvtepu16_epi32(h), 16));
      }
      _mm_store_ps(lanes + 4 * b, f);
    }
    _mm512_store_ps(dst + 16 * which, _mm512_maskz_mov_ps(static_cast<__mmask16>((1u << nr) - 1u),
                                                          _mm512_load_ps(lanes)));
  }
}

}  // namespace lmx::cpu::detail
