// Internal (AVX2 and AVX-512 translation units): the pieces of the packed quantized matvec
// with integer activations (quant_avx2.cpp) that the few-row kernel (quant_rows_avx512.cpp)
// shares with it, so both sum a row in the same order: the prepared activations, where a
// 4-row block keeps its scales and biases, and the f32 steps that end a group and a block.
#pragma once

#include <immintrin.h>

#include <algorithm>
#include <cstdint>

#include "lmx/backend/cpu/quantized.h"

namespace lmx::cpu::detail {

inline constexpr int kRows = PackedQuantWeight::kRows;

template <Dtype SD>
constexpr int64_t ssize() {
  return SD == Dtype::f32 ? 4 : 2;
}

// Four consecutive scale-dtype values as f32.
template <Dtype SD>
inline __m128 load4(const uint8_t* p) {
  if constexpr (SD == Dtype::f32) {
    return _mm_loadu_ps(reinterpret_cast<const float*>(p));
  } else {
    const __m128i h = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p));
    if constexpr (SD == Dtype::f16) return _mm_cvtph_ps(h);
    return _mm_castsi128_ps(_mm_slli_epi32(_mm_cvtepu16_epi32(h), 16));
  }
}

// Activations prepared once per call (per x row), shared read-only by all threads.
struct XPrep {
  const float* xs[2] = {nullptr, nullptr};  // [k_padded] x pre-scaled per plane/position
  const float* xsum = nullptr;              // [groups] sum of x over each group
  const int8_t* xq = nullptr;               // [k_padded] int8 x in the plane's byte order
  const int16_t* xq16 = nullptr;            // [k_padded] int16 x in the plane's 16-bit lane order
  const float* dx = nullptr;                // [groups] scale of xq
};

// Bytes ahead of the current read position that the kernels prefetch: the hardware
// prefetcher alone leaves a single core well below the DRAM bandwidth on this stream.
#ifndef LMX_QUANT_PREFETCH_AHEAD
#define LMX_QUANT_PREFETCH_AHEAD 6144
#endif
constexpr int64_t kPrefetchAhead = LMX_QUANT_PREFETCH_AHEAD;

#ifndef LMX_QUANT_PREFETCH_HINT
#define LMX_QUANT_PREFETCH_HINT _MM_HINT_T0
#endif
inline void prefetch2(const uint8_t* p, int64_t ahead = kPrefetchAhead) {
  _mm_prefetch(reinterpret_cast<const char*>(p + ahead), LMX_QUANT_PREFETCH_HINT);
  _mm_prefetch(reinterpret_cast<const char*>(p + ahead + 64), LMX_QUANT_PREFETCH_HINT);
}

// Prefetch distance of the integer kernels: about 1.25 row blocks ahead, between 6 and
// 18 KiB. Measured on Zen 3, 2 threads (kernel_report, then tg128 in interleaved A/B runs):
// 8-bit k = 2048 (Llama's projections, lm_head; 8.5 KiB blocks) ~12% faster at 11-12 KiB
// than at 6; 4-bit k = 4864 / 8192 (the ffn_down shapes, 10-17 KiB blocks) 15-18% faster at
// 13-18 KiB; shorter blocks measured best at 6 KiB (12 KiB was slower for Qwen's k = 896),
// and 8-bit k = 4864 / 8192 the same at 6 and 18 KiB. tg128 against 6 KiB everywhere:
// Qwen q4 +3-7%, Qwen q8 +2-10%, Llama q4 +5%, Llama q8 +12%.
inline int64_t prefetch_ahead(const PackedQuantWeight& w) {
  const int64_t want = (w.block_bytes() + w.block_bytes() / 4 + 63) / 64 * 64;
  return std::clamp<int64_t>(want, kPrefetchAhead, 3 * kPrefetchAhead);
}

// Where the integer kernels find a block's scales and biases (bytes from the block start;
// their single plane starts the block).
struct BlockLayout {
  int64_t scales = 0, biases = 0;
  int64_t ahead = kPrefetchAhead;  // prefetch distance (prefetch_ahead)
};

// End of one group in the integer kernels. The 4 rows' integer sums are first reduced to
// one vector (lane r + 4h: row r, half h), so one convert and one FMA by s[g, r] * dx[g]
// serve the 4 rows and a single f32 accumulator stays in a register. The bias term
// (b[g, r] + q_offset * s[g, r]) * sum(x)_g accumulates on 4 lanes (one per row).
template <int B, Dtype SD>
inline void flush_int(const uint8_t* block,
                      const BlockLayout& bl,
                      const XPrep& xp,
                      int64_t g,
                      const __m256i iacc[kRows],
                      __m256& acc,
                      __m128& bacc) {
  const __m128 s = load4<SD>(block + bl.scales + g * kRows * ssize<SD>());
  __m128 b = load4<SD>(block + bl.biases + g * kRows * ssize<SD>());
  if constexpr (B == 8) b = _mm_fmadd_ps(_mm_set1_ps(128.0f), s, b);  // q stored as q - 128
  bacc = _mm_fmadd_ps(b, _mm_set1_ps(xp.xsum[g]), bacc);
  const __m128 sd = _mm_mul_ps(s, _mm_set1_ps(xp.dx[g]));
  const __m256i t =
      _mm256_hadd_epi32(_mm256_hadd_epi32(iacc[0], iacc[1]), _mm256_hadd_epi32(iacc[2], iacc[3]));
  acc = _mm256_fmadd_ps(_mm256_set_m128(sd, sd), _mm256_cvtepi32_ps(t), acc);
}

// The block's 4 outputs from the integer kernels' accumulators.
inline void store_int(__m256 acc, __m128 bacc, float* y4) {
  const __m128 rows = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
  _mm_store_ps(y4, _mm_add_ps(rows, bacc));
}

// Few rows of x (2 .. kMaxFewRows) at once over blocks [b0, b1) of w with int16 or int8
// activations (AVX-512 VNNI, quant_rows_avx512.cpp): each weight unit is read and unpacked
// once and multiplied into every row. Row i is prepared as xps[i] (for `prec`) and its
// outputs go to y[i][0 .. n). Each row's integer group sums are exact and its f32 steps are
// flush_int's and store_int's in the matvec's order, so every row equals a one-row (decode)
// call of the same precision bit for bit.
inline constexpr int kMaxFewRows = 8;
// Whether the few-row kernel takes m rows of w: AVX-512 VNNI; int16 activations with 4
// bits in groups of 64 / 128 or 8 bits; int8 activations with 4 bits in groups of 64 / 128.
bool few_rows_supported(const PackedQuantWeight& w, ActivationPrecision prec, int64_t m);
// `factors`: few_rows_factors(xps, m, groups of w) of these rows (made once per call of
// the matmul, not per chunk of blocks).
void few_rows_avx512(const PackedQuantWeight& w,
                     ActivationPrecision prec,
                     const XPrep* xps,
                     const float* factors,
                     float* const* y,
                     int m,
                     int64_t b0,
                     int64_t b1);
// The x rows' f32 factors per group laid out as the few-row kernel's f32 steps load them
// (one load each): per group, for each pair p of rows (2p, 2p + 1) 16 floats (dx of row 2p
// in lanes 0-7, of 2p + 1 in 8-15), then for each quad q of rows 16 floats (xsum of row 4q + r
// in lanes 4r .. 4r + 3, one per weight row); rows past m repeat the last one. Writes
// few_rows_factors_size(m, groups) floats.
size_t few_rows_factors_size(int m, int64_t groups);
void few_rows_factors(const XPrep* xps, int m, int64_t groups, float* out);

}  // namespace lmx::cpu::detail
