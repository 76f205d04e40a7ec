// AVX-512 VNNI: a few rows of x (2 .. 8: speculative decoding's verify pass, batched decode
// steps) over the packed layout with int16 or int8 activations. The matvec runs its decode
// kernel once per row (each chunk of weights from memory once, then from L2), unpacking
// every weight unit again for each row; here each unit is read and unpacked once and
// multiplied into every row with 512-bit vpdpwssd (int16 x: vpmaddwd + vpaddd in one; two
// weight rows of 16 inputs per instruction) or vpdpbusd (int8 x, 4-bit weights: the
// nibbles as unsigned bytes times x as signed bytes, two weight rows of 32 inputs per
// instruction: half the instructions of int16 x). A row's integer group sums are exact
// whatever the order of the products, and its f32 steps are the matvec's own (flush_int,
// store_int, quant_matvec_int.h) done lane for lane on two rows of x per zmm, with the
// scales and biases loaded once for all rows, so each row's outputs are those of a one-row
// call of the same activation precision bit for bit.
#include <immintrin.h>

#include <algorithm>
#include <cstdint>

#include "lmx/backend/cpu/cpu_features.h"
#include "lmx/backend/cpu/quant_matvec_int.h"
// Last: everything below is compiled for AVX-512.
#include "lmx/backend/cpu/avx512_target.h"
#if !defined(__clang__)
// g++ 12 also reports the unused _mm512_undefined_*() source of the broadcast, extract and
// widening intrinsics as "used uninitialized" (GCC PR 105593; closed with the region).
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif

namespace lmx::cpu::detail {
namespace {

constexpr int R = kRows;

// Unaligned loads: a block is 64-byte aligned only when its size is.
inline __m512i load512(const void* p) { return _mm512_loadu_si512(p); }
// The 32 bytes at p (16 int16 or 32 int8 activations) in both 256-bit halves (one load).
inline __m512i load_twice(const void* p) {
  return _mm512_broadcast_i64x4(_mm256_load_si256(reinterpret_cast<const __m256i*>(p)));
}

// Group g of one 4-row block for M rows of x: ab[i][0] = x row i's integer sums against
// weight rows 0 (low 256 bits) and 1 (high), ab[i][1] against rows 2 and 3, each row's 8
// lanes those of the matvec's accumulator (lane L: the products its lane L adds up; only
// the sums over lanes 0-3 and 4-7 reach the f32 steps). Weight rows are adjacent 32-byte
// pieces of a unit, so one zmm carries two rows. I8: int8 x (4 bits only).
template <int B, int G, int M, bool I8>
__attribute__((always_inline)) inline void group_sums(const uint8_t* block, const BlockLayout& bl,
                                                      const XPrep* xps, int64_t g, __m512i ab[M][2]) {
  static_assert(!I8 || B == 4, "int8 x: 4-bit weights only");
  if constexpr (I8) {
    // A 64-input unit of a row: 32 bytes, byte b holds inputs 16 (b % 4) + b / 4 (low
    // nibble) and 8 more (high), the order prepare_x gives xq: its first 32 bytes for the
    // low nibbles, the next 32 for the high. Lane L sums bytes 4L .. 4L + 3 as the matvec's
    // vpmaddubsw + vpmaddwd lane L does.
    const __m512i low = _mm512_set1_epi8(0x0F);
    for (int i = 0; i < M; ++i) ab[i][0] = ab[i][1] = _mm512_setzero_si512();
    for (int uu = 0; uu < G / 64; ++uu) {
      const int64_t u = g * (G / 64) + uu;
      prefetch2(block + u * R * 32, bl.ahead);
      const __m512i va = load512(block + u * R * 32), vb = load512(block + u * R * 32 + 64);
      const __m512i a0 = _mm512_and_si512(va, low), b0 = _mm512_and_si512(vb, low);
      const __m512i a1 = _mm512_and_si512(_mm512_srli_epi16(va, 4), low);
      const __m512i b1 = _mm512_and_si512(_mm512_srli_epi16(vb, 4), low);
      for (int i = 0; i < M; ++i) {
        const int8_t* x = xps[i].xq + u * 64;
        const __m512i xlo = load_twice(x), xhi = load_twice(x + 32);
        __m512i a = _mm512_dpbusd_epi32(ab[i][0], a0, xlo), b = _mm512_dpbusd_epi32(ab[i][1], b0, xlo);
        ab[i][0] = _mm512_dpbusd_epi32(a, a1, xhi);
        ab[i][1] = _mm512_dpbusd_epi32(b, b1, xhi);
      }
    }
  } else if constexpr (B == 4) {
    // A 64-input unit of a row: 16 lanes of 16 bits, nibble j of lane L is input
    // 32 * (L % 2) + 8j + L / 2, the order prepare_x gives xq16 (quant_avx2.cpp); x in both
    // halves.
    const __m512i low = _mm512_set1_epi16(0x0F);
    for (int i = 0; i < M; ++i) ab[i][0] = ab[i][1] = _mm512_setzero_si512();
    for (int uu = 0; uu < G / 64; ++uu) {
      const int64_t u = g * (G / 64) + uu;
      prefetch2(block + u * R * 32, bl.ahead);
      const __m512i va = load512(block + u * R * 32), vb = load512(block + u * R * 32 + 64);
      const __m512i a0 = _mm512_and_si512(va, low), b0 = _mm512_and_si512(vb, low);
      const __m512i a1 = _mm512_and_si512(_mm512_srli_epi16(va, 4), low);
      const __m512i b1 = _mm512_and_si512(_mm512_srli_epi16(vb, 4), low);
      const __m512i a2 = _mm512_and_si512(_mm512_srli_epi16(va, 8), low);
      const __m512i b2 = _mm512_and_si512(_mm512_srli_epi16(vb, 8), low);
      const __m512i a3 = _mm512_srli_epi16(va, 12), b3 = _mm512_srli_epi16(vb, 12);
      for (int i = 0; i < M; ++i) {
        const int16_t* x = xps[i].xq16 + u * 64;
        const __m512i x0 = load_twice(x), x1 = load_twice(x + 16), x2 = load_twice(x + 32),
                      x3 = load_twice(x + 48);
        __m512i a = ab[i][0], b = ab[i][1];
        a = _mm512_dpwssd_epi32(a, a0, x0);
        b = _mm512_dpwssd_epi32(b, b0, x0);
        a = _mm512_dpwssd_epi32(a, a1, x1);
        b = _mm512_dpwssd_epi32(b, b1, x1);
        a = _mm512_dpwssd_epi32(a, a2, x2);
        b = _mm512_dpwssd_epi32(b, b2, x2);
        ab[i][0] = _mm512_dpwssd_epi32(a, a3, x3);
        ab[i][1] = _mm512_dpwssd_epi32(b, b3, x3);
      }
    }
  } else {
    // 8 bits: a row's 32-input unit (q - 128, signed bytes) widened to 32 int16 lanes, x in
    // input order; the matvec's lane L is this lane L plus lane 8 + L. Two rows at a time.
    for (int h = 0; h < 2; ++h) {
      __m512i a[M], b[M];
      for (int i = 0; i < M; ++i) a[i] = b[i] = _mm512_setzero_si512();
      for (int c = 0; c < G / 32; ++c) {
        const int64_t u = g * (G / 32) + c;
        if (h == 0) prefetch2(block + u * R * 32, bl.ahead);
        const uint8_t* src = block + (u * R + 2 * h) * 32;
        const __m512i wa = _mm512_cvtepi8_epi16(_mm256_load_si256(reinterpret_cast<const __m256i*>(src)));
        const __m512i wb =
            _mm512_cvtepi8_epi16(_mm256_load_si256(reinterpret_cast<const __m256i*>(src + 32)));
        for (int i = 0; i < M; ++i) {
          const __m512i x = load512(xps[i].xq16 + u * 32);
          a[i] = _mm512_dpwssd_epi32(a[i], wa, x);
          b[i] = _mm512_dpwssd_epi32(b[i], wb, x);
        }
      }
      for (int i = 0; i < M; ++i)  // [lo(a) + hi(a) | lo(b) + hi(b)]
        ab[i][h] = _mm512_add_epi32(_mm512_shuffle_i64x2(a[i], b[i], 0x44), _mm512_shuffle_i64x2(a[i], b[i], 0xEE));
    }
  }
}

// The matvec's t of flush_int (lane r + 4h: row r's sum over lanes 4h .. 4h + 3) for two
// rows of x at once: x row i's from ab_i in the low 256 bits, x row j's from ab_j in the high.
inline __m512i row_sums(const __m512i ab_i[2], const __m512i ab_j[2]) {
  // Per 128-bit lane c: [sum of A's lane c, B's, C's, D's] for A, B, C, D = ab_i[0], ab_i[1],
  // ab_j[0], ab_j[1] (lane c of A: c = 0, 1 row 0 halves 0, 1; c = 2, 3 row 1's; B: rows 2, 3).
  const __m512i u1 = _mm512_add_epi32(_mm512_unpacklo_epi32(ab_i[0], ab_i[1]),
                                      _mm512_unpackhi_epi32(ab_i[0], ab_i[1]));
  const __m512i u2 = _mm512_add_epi32(_mm512_unpacklo_epi32(ab_j[0], ab_j[1]),
                                      _mm512_unpackhi_epi32(ab_j[0], ab_j[1]));
  const __m512i v = _mm512_add_epi32(_mm512_unpacklo_epi64(u1, u2), _mm512_unpackhi_epi64(u1, u2));
  const __m512i order = _mm512_setr_epi32(0, 8, 1, 9, 4, 12, 5, 13, 2, 10, 3, 11, 6, 14, 7, 15);
  return _mm512_permutexvar_epi32(order, v);
}

// factors: few_rows_factors's layout (each group's dx per pair of rows and xsum per quad:
// one load each in the f32 steps; broadcasting them group by group was a third of them).
template <int B, int G, Dtype SD, int M, bool I8>
void few_rows(const PackedQuantWeight& w, const XPrep* xps, const float* factors, float* const* y, int64_t b0,
              int64_t b1) {
  constexpr int P = (M + 1) / 2;  // pairs of x rows (an odd M's last pair repeats its row)
  constexpr int Q = (M + 3) / 4;  // quads of x rows (bias accumulators)
  const BlockLayout bl{w.scales_offset(), w.biases_offset(), prefetch_ahead(w)};
  const int64_t groups = w.k() / G;
  // As the matvec: fetch the lines of this block's scales and biases that the plane
  // reads' prefetches jump over.
  const int64_t tail = w.block_bytes() - w.scales_offset();
  for (int64_t blk = b0; blk < b1; ++blk) {
    const uint8_t* block = w.data() + blk * w.block_bytes();
    for (int64_t off = bl.ahead - tail; off < bl.ahead; off += 64)
      _mm_prefetch(reinterpret_cast<const char*>(block + off), LMX_QUANT_PREFETCH_HINT);
    // acc[p]: the matvec's f32 accumulator of x row 2p (low 256 bits) and 2p + 1 (high);
    // bacc[q]: its bias accumulator of x rows 4q .. 4q + 3 (128 bits each).
    __m512 acc[P], bacc[Q];
    for (int p = 0; p < P; ++p) acc[p] = _mm512_setzero_ps();
    for (int q = 0; q < Q; ++q) bacc[q] = _mm512_setzero_ps();
    for (int64_t g = 0; g < groups; ++g) {
      __m512i ab[M][2];
      group_sums<B, G, M, I8>(block, bl, xps, g, ab);
      // flush_int's operations, lane for lane, with the scales and biases loaded once.
      const float* dx = factors + g * (P + Q) * 16;
      const float* xsum = dx + P * 16;
      const __m128 s = load4<SD>(block + bl.scales + g * R * ssize<SD>());
      __m128 bias = load4<SD>(block + bl.biases + g * R * ssize<SD>());
      if constexpr (B == 8) bias = _mm_fmadd_ps(_mm_set1_ps(128.0f), s, bias);  // q stored as q - 128
      const __m512 bias4 = _mm512_broadcast_f32x4(bias);
      for (int q = 0; q < Q; ++q) bacc[q] = _mm512_fmadd_ps(bias4, _mm512_loadu_ps(xsum + q * 16), bacc[q]);
      const __m512 s4 = _mm512_broadcast_f32x4(s);
      for (int p = 0; p < P; ++p) {
        const int i = 2 * p, j = std::min(2 * p + 1, M - 1);
        acc[p] = _mm512_fmadd_ps(_mm512_mul_ps(s4, _mm512_loadu_ps(dx + p * 16)),
                                 _mm512_cvtepi32_ps(row_sums(ab[i], ab[j])), acc[p]);
      }
    }
    alignas(64) float biases[Q * 16];
    for (int q = 0; q < Q; ++q) _mm512_store_ps(biases + q * 16, bacc[q]);
    const int rows = static_cast<int>(std::min<int64_t>(R, w.n() - blk * R));
    for (int i = 0; i < M; ++i) {
      alignas(16) float out[R];
      const __m512 a = acc[i / 2];
      store_int(i % 2 ? _mm512_extractf32x8_ps(a, 1) : _mm512_castps512_ps256(a), _mm_load_ps(biases + 4 * i), out);
      for (int r = 0; r < rows; ++r) y[i][blk * R + r] = out[r];
    }
  }
}

using FewRowsFn = void (*)(const PackedQuantWeight&, const XPrep*, const float*, float* const*, int64_t, int64_t);

template <int B, int G, Dtype SD, bool I8>
FewRowsFn pick_m(int m) {
  switch (m) {
    case 2: return &few_rows<B, G, SD, 2, I8>;
    case 3: return &few_rows<B, G, SD, 3, I8>;
    case 4: return &few_rows<B, G, SD, 4, I8>;
    case 5: return &few_rows<B, G, SD, 5, I8>;
    case 6: return &few_rows<B, G, SD, 6, I8>;
    case 7: return &few_rows<B, G, SD, 7, I8>;
    default: return &few_rows<B, G, SD, 8, I8>;
  }
}

template <Dtype SD>
FewRowsFn pick_bg(int bits, int group, bool int8, int m) {
  if (int8) return group == 64 ? pick_m<4, 64, SD, true>(m) : pick_m<4, 128, SD, true>(m);
  if (bits == 4) return group == 64 ? pick_m<4, 64, SD, false>(m) : pick_m<4, 128, SD, false>(m);
  switch (group) {
    case 32: return pick_m<8, 32, SD, false>(m);
    case 64: return pick_m<8, 64, SD, false>(m);
    default: return pick_m<8, 128, SD, false>(m);
  }
}

}  // namespace

void few_rows_avx512(const PackedQuantWeight& w,
                     ActivationPrecision prec,
                     const XPrep* xps,
                     const float* factors,
                     float* const* y,
                     int m,
                     int64_t b0,
                     int64_t b1) {
  const bool int8 = prec == ActivationPrecision::int8;
  FewRowsFn fn = nullptr;
  switch (w.scale_dtype()) {
    case Dtype::f16: fn = pick_bg<Dtype::f16>(w.bits(), w.group_size(), int8, m); break;
    case Dtype::bf16: fn = pick_bg<Dtype::bf16>(w.bits(), w.group_size(), int8, m); break;
    default: fn = pick_bg<Dtype::f32>(w.bits(), w.group_size(), int8, m); break;
  }
  fn(w, xps, factors, y, b0, b1);
}

}  // namespace lmx::cpu::detail

#include "lmx/backend/cpu/avx512_target_end.h"

namespace lmx::cpu::detail {

size_t few_rows_factors_size(int m, int64_t groups) {
  return static_cast<size_t>(groups * ((m + 1) / 2 + (m + 3) / 4) * 16);
}

void few_rows_factors(const XPrep* xps, int m, int64_t groups, float* out) {
  const int P = (m + 1) / 2, Q = (m + 3) / 4;
  for (int64_t g = 0; g < groups; ++g) {
    float* dx = out + g * (P + Q) * 16;
    for (int p = 0; p < P; ++p)
      for (int l = 0; l < 16; ++l) dx[p * 16 + l] = xps[std::min(2 * p + l / 8, m - 1)].dx[g];
    float* xs = dx + P * 16;
    for (int q = 0; q < Q; ++q)
      for (int l = 0; l < 16; ++l) xs[q * 16 + l] = xps[std::min(4 * q + l / 4, m - 1)].xsum[g];
  }
}

bool few_rows_supported(const PackedQuantWeight& w, ActivationPrecision prec, int64_t m) {
  const bool g64_128 = w.group_size() == 64 || w.group_size() == 128;
  const bool shape = prec == ActivationPrecision::int16   ? w.bits() == 8 || (w.bits() == 4 && g64_128)
                     : prec == ActivationPrecision::int8 ? w.bits() == 4 && g64_128
                                                          : false;
  return shape && m >= 2 && m <= kMaxFewRows && cpu_features().use_avx512();
}

}  // namespace lmx::cpu::detail
