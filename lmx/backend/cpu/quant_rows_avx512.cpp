// AVX-512 VNNI: a few rows of x (2 .. 8: speculative decoding's verify pass, batched decode
// steps) over the packed layout with int16 activations. The matvec runs its decode kernel
// once per row (each chunk of weights from memory once, then from L2), unpacking every
// weight unit again for each row; here each unit is read and unpacked once and multiplied
// into every row with vpdpwssd (vpmaddwd + vpaddd in one). A row's integer group sums are
// exact whatever the order of the products, and its f32 steps are the matvec's own
// (flush_int, store_int, quant_matvec_int.h), so each row's outputs are those of a one-row
// call bit for bit.
#include <immintrin.h>

#include <cstdint>

#include "lmx/backend/cpu/cpu_features.h"
#include "lmx/backend/cpu/quant_matvec_int.h"
// Last: everything below is compiled for AVX-512.
#include "lmx/backend/cpu/avx512_target.h"

namespace lmx::cpu::detail {
namespace {

constexpr int R = kRows;

inline __m256i load256(const void* p) { return _mm256_load_si256(static_cast<const __m256i*>(p)); }

// Group g of one 4-row block for M rows of x: isum[i][r] = row i's integer sums against
// weight row r (8 lanes, added up as flush_int adds the matvec's).
template <int B, int G, int M>
inline void group_sums(const uint8_t* block, const BlockLayout& bl, const XPrep* xps, int64_t g,
                       __m256i isum[M][R]) {
  for (int r = 0; r < R; ++r) {
    __m256i a[M];
    for (int i = 0; i < M; ++i) a[i] = _mm256_setzero_si256();
    if constexpr (B == 4) {
      // A 64-input unit as 16 lanes of 16 bits: nibble j of lane L is input 32 * (L % 2) +
      // 8j + L / 2, the order prepare_x gives xq16 (quant_avx2.cpp).
      const __m256i low = _mm256_set1_epi16(0x0F);
      for (int uu = 0; uu < G / 64; ++uu) {
        const int64_t u = g * (G / 64) + uu;
        if (r == 0) prefetch2(block + u * R * 32, bl.ahead);
        const __m256i v = load256(block + (u * R + r) * 32);
        const __m256i w0 = _mm256_and_si256(v, low);
        const __m256i w1 = _mm256_and_si256(_mm256_srli_epi16(v, 4), low);
        const __m256i w2 = _mm256_and_si256(_mm256_srli_epi16(v, 8), low);
        const __m256i w3 = _mm256_srli_epi16(v, 12);
        for (int i = 0; i < M; ++i) {
          const int16_t* x = xps[i].xq16 + u * 64;
          a[i] = _mm256_dpwssd_epi32(a[i], w0, load256(x));
          a[i] = _mm256_dpwssd_epi32(a[i], w1, load256(x + 16));
          a[i] = _mm256_dpwssd_epi32(a[i], w2, load256(x + 32));
          a[i] = _mm256_dpwssd_epi32(a[i], w3, load256(x + 48));
        }
      }
    } else {
      // 8 bits: q - 128 as signed bytes, widened to int16; x in input order.
      for (int c = 0; c < G / 32; ++c) {
        const int64_t u = g * (G / 32) + c;
        if (r == 0) prefetch2(block + u * R * 32, bl.ahead);
        const uint8_t* src = block + (u * R + r) * 32;
        const __m256i w0 = _mm256_cvtepi8_epi16(_mm_load_si128(reinterpret_cast<const __m128i*>(src)));
        const __m256i w1 =
            _mm256_cvtepi8_epi16(_mm_load_si128(reinterpret_cast<const __m128i*>(src + 16)));
        for (int i = 0; i < M; ++i) {
          const int16_t* x = xps[i].xq16 + u * 32;
          a[i] = _mm256_dpwssd_epi32(a[i], w0, load256(x));
          a[i] = _mm256_dpwssd_epi32(a[i], w1, load256(x + 16));
        }
      }
    }
    for (int i = 0; i < M; ++i) isum[i][r] = a[i];
  }
}

template <int B, int G, Dtype SD, int M>
void few_rows(const PackedQuantWeight& w, const XPrep* xps, float* const* y, int64_t b0, int64_t b1) {
  const BlockLayout bl{w.scales_offset(), w.biases_offset(), prefetch_ahead(w)};
  const int64_t groups = w.k() / G;
  // As the matvec: fetch the lines of this block's scales and biases that the plane
  // reads' prefetches jump over.
  const int64_t tail = w.block_bytes() - w.scales_offset();
  for (int64_t blk = b0; blk < b1; ++blk) {
    const uint8_t* block = w.data() + blk * w.block_bytes();
    for (int64_t off = bl.ahead - tail; off < bl.ahead; off += 64)
      _mm_prefetch(reinterpret_cast<const char*>(block + off), LMX_QUANT_PREFETCH_HINT);
    __m256 acc[M];
    __m128 bacc[M];
    for (int i = 0; i < M; ++i) {
      acc[i] = _mm256_setzero_ps();
      bacc[i] = _mm_setzero_ps();
    }
    for (int64_t g = 0; g < groups; ++g) {
      __m256i isum[M][R];
      group_sums<B, G, M>(block, bl, xps, g, isum);
      for (int i = 0; i < M; ++i) flush_int<B, SD>(block, bl, xps[i], g, isum[i], acc[i], bacc[i]);
    }
    const int rows = static_cast<int>(std::min<int64_t>(R, w.n() - blk * R));
    for (int i = 0; i < M; ++i) {
      alignas(16) float out[R];
      store_int(acc[i], bacc[i], out);
      for (int r = 0; r < rows; ++r) y[i][blk * R + r] = out[r];
    }
  }
}

using FewRowsFn = void (*)(const PackedQuantWeight&, const XPrep*, float* const*, int64_t, int64_t);

template <int B, int G, Dtype SD>
FewRowsFn pick_m(int m) {
  switch (m) {
    case 2: return &few_rows<B, G, SD, 2>;
    case 3: return &few_rows<B, G, SD, 3>;
    case 4: return &few_rows<B, G, SD, 4>;
    case 5: return &few_rows<B, G, SD, 5>;
    case 6: return &few_rows<B, G, SD, 6>;
    case 7: return &few_rows<B, G, SD, 7>;
    default: return &few_rows<B, G, SD, 8>;
  }
}

template <Dtype SD>
FewRowsFn pick_bg(int bits, int group, int m) {
  if (bits == 4) return group == 64 ? pick_m<4, 64, SD>(m) : pick_m<4, 128, SD>(m);
  switch (group) {
    case 32: return pick_m<8, 32, SD>(m);
    case 64: return pick_m<8, 64, SD>(m);
    default: return pick_m<8, 128, SD>(m);
  }
}

}  // namespace

void few_rows_int16_avx512(
    const PackedQuantWeight& w, const XPrep* xps, float* const* y, int m, int64_t b0, int64_t b1) {
  FewRowsFn fn = nullptr;
  switch (w.scale_dtype()) {
    case Dtype::f16: fn = pick_bg<Dtype::f16>(w.bits(), w.group_size(), m); break;
    case Dtype::bf16: fn = pick_bg<Dtype::bf16>(w.bits(), w.group_size(), m); break;
    default: fn = pick_bg<Dtype::f32>(w.bits(), w.group_size(), m); break;
  }
  fn(w, xps, y, b0, b1);
}

}  // namespace lmx::cpu::detail

#include "lmx/backend/cpu/avx512_target_end.h"

namespace lmx::cpu::detail {

bool few_rows_int16_supported(const PackedQuantWeight& w, int64_t m) {
  return m >= 2 && m <= kMaxFewRows && cpu_features().use_avx512() &&
         (w.bits() == 8 || (w.bits() == 4 && (w.group_size() == 64 || w.group_size() == 128)));
}

}  // namespace lmx::cpu::detail
