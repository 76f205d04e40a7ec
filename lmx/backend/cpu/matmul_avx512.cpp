// AVX-512 GEMM (prefill: m >= 2 rows of x) for f32 weights (F32Path below: the AVX2 GEMM's
// sums, twice as wide) and for bf16 weights, two paths:
// - With AVX512_BF16 (use_avx512_bf16): x rounded once per call to bf16 and vdpbf16ps on
//   pairs of inputs, f32 sums (see "bf16 x bf16 dot products" below for the numerics: x's
//   rounding, <= 2^-8 relative per product, is the one difference from the reference).
// - Without: y = x @ W^T with f32 activations and f32 accumulation, the numerics of the AVX2
//   GEMM and of the scalar reference (bf16 -> f32 widening is exact).
//
// BLIS-style as gemm_avx2.h, a 12 x 32 tile (24 zmm accumulators, x broadcast from memory
// by the multiply-add), partial tiles stored through masks. FMA path: A packed into 6-row
// f32 slivers (two per tile), B into 32-column bf16 slivers whose 32-bit lane i holds
// columns i (low half) and i + 16 (high), so one 64-byte load and a shift / AND give both
// f32 vectors exactly. Dot-product path: A and B slivers of bf16 pairs (32-bit steps), the
// step loop of the VNNI GEMMs (tile_loop_avx512.h).
#include <immintrin.h>

#include <algorithm>

#include "lmx/backend/cpu/cpu_features.h"
#include "lmx/backend/cpu/gemm_avx2.h"
#include "lmx/backend/cpu/matmul_kernels.h"
#include "lmx/backend/cpu/tile_loop_avx512.h"
// Last: everything below is compiled for AVX-512.
#include "lmx/backend/cpu/avx512_target.h"

namespace lmx::cpu::detail {
namespace {

constexpr int kSR = avx2::kMR;  // rows of an A sliver (pack_a_strided)
constexpr int kMR = 2 * kSR;    // 12 rows per tile
constexpr int kNR = 32;         // columns per tile and B sliver
constexpr int64_t kKC = 2048;   // inputs per k block
constexpr int64_t kMC = 24;     // rows per A block (a multiple of kMR)
constexpr int64_t kNC = 1024;   // columns per B panel
constexpr int kInt16Cols = 16;  // columns of a pair sliver (one zmm)

// B sliver for W rows j0 .. j0 + nr (row stride ld), inputs [p0, p0 + kc): at k step p the
// 32-bit lane i holds (W[j0 + i][p0 + p], W[j0 + i + 16][p0 + p]); rows >= nr are zero.
void pack_b_fma(
    uint16_t* dst, const uint16_t* w, int64_t ld, int64_t j0, int nr, int64_t p0, int64_t kc) {
  const uint16_t* rows[kNR];
  for (int jj = 0; jj < kNR; ++jj) rows[jj] = jj < nr ? w + (j0 + jj) * ld + p0 : nullptr;
  auto load8 = [&](int jj, int64_t p) {
    return rows[jj] ? _mm_loadu_si128(reinterpret_cast<const __m128i*>(rows[jj] + p))
                    : _mm_setzero_si128();
  };
  int64_t p = 0;
  for (; p + 8 <= kc; p += 8)
    for (int half = 0; half < 2; ++half) {
      // Row i of the 8x8 (32-bit) block: lane 8 * half + i's column pair at inputs p..p+7.
      __m256 r[8];
      for (int i = 0; i < 8; ++i) {
        const int lane = 8 * half + i;
        const __m128i lo = load8(lane, p), hi = load8(lane + 16, p);
        r[i] = _mm256_castsi256_ps(
            _mm256_set_m128i(_mm_unpackhi_epi16(lo, hi), _mm_unpacklo_epi16(lo, hi)));
      }
      avx2::transpose8(r);
      for (int e = 0; e < 8; ++e)
        _mm256_store_ps(reinterpret_cast<float*>(dst + (p + e) * kNR + 16 * half), r[e]);
    }
  for (; p < kc; ++p)
    for (int i = 0; i < 16; ++i) {
      dst[p * kNR + 2 * i] = rows[i] ? rows[i][p] : uint16_t{0};
      dst[p * kNR + 2 * i + 1] = rows[i + 16] ? rows[i + 16][p] : uint16_t{0};
    }
}

// Masks of the columns < nr in the two 16-column halves of a tile.
inline __mmask16 half_mask(int nr, int h) {
  const int c = std::clamp(nr - 16 * h, 0, 16);
  return static_cast<__mmask16>((1u << c) - 1u);
}

// C tile (mr x nr of 12 x 32) (+)= acc, through masks past nr.
void store_tile(const float (&acc)[kMR][kNR], float* c, int64_t c_rs, int mr, int nr, bool read_c) {
  const __mmask16 m[2] = {half_mask(nr, 0), half_mask(nr, 1)};
  for (int ii = 0; ii < mr; ++ii)
    for (int h = 0; h < 2; ++h) {
      float* out = c + ii * c_rs + h * 16;
      __m512 v = _mm512_load_ps(acc[ii] + 16 * h);
      if (read_c) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m[h], out));
      _mm512_mask_storeu_ps(out, m[h], v);
    }
}

// C tile (mr x nr of 12 x 32) (+)= A slivers a0 (rows 0-5), a1 (6-11) times the B sliver
// over kc inputs; C is overwritten when read_c is false.
void micro_12x32(int64_t kc,
                 const float* a0,
                 const float* a1,
                 const uint16_t* b,
                 float* c,
                 int64_t c_rs,
                 int mr,
                 int nr,
                 bool read_c) {
  // The k loop in assembly (g++ 12 shuffled intrinsic accumulators between registers):
  // zmm0-23 accumulate (row r, columns 16h..16h+15 in zmm 2r + h), zmm24-25 the widened B
  // vectors, zmm26 the raw bf16 pairs, zmm27 the high-half mask.
  alignas(64) float acc[kMR][kNR];
  int64_t n = kc;
  const uint32_t hi_mask = 0xFFFF0000u;
  asm volatile(
      "vpbroadcastd %[hm], %%zmm27\n\t"
      "vpxord %%zmm0, %%zmm0, %%zmm0\n\t"
      "vpxord %%zmm1, %%zmm1, %%zmm1\n\t"
      "vpxord %%zmm2, %%zmm2, %%zmm2\n\t"
      "vpxord %%zmm3, %%zmm3, %%zmm3\n\t"
      "vpxord %%zmm4, %%zmm4, %%zmm4\n\t"
      "vpxord %%zmm5, %%zmm5, %%zmm5\n\t"
      "vpxord %%zmm6, %%zmm6, %%zmm6\n\t"
      "vpxord %%zmm7, %%zmm7, %%zmm7\n\t"
      "vpxord %%zmm8, %%zmm8, %%zmm8\n\t"
      "vpxord %%zmm9, %%zmm9, %%zmm9\n\t"
      "vpxord %%zmm10, %%zmm10, %%zmm10\n\t"
      "vpxord %%zmm11, %%zmm11, %%zmm11\n\t"
      "vpxord %%zmm12, %%zmm12, %%zmm12\n\t"
      "vpxord %%zmm13, %%zmm13, %%zmm13\n\t"
      "vpxord %%zmm14, %%zmm14, %%zmm14\n\t"
      "vpxord %%zmm15, %%zmm15, %%zmm15\n\t"
      "vpxord %%zmm16, %%zmm16, %%zmm16\n\t"
      "vpxord %%zmm17, %%zmm17, %%zmm17\n\t"
      "vpxord %%zmm18, %%zmm18, %%zmm18\n\t"
      "vpxord %%zmm19, %%zmm19, %%zmm19\n\t"
      "vpxord %%zmm20, %%zmm20, %%zmm20\n\t"
      "vpxord %%zmm21, %%zmm21, %%zmm21\n\t"
      "vpxord %%zmm22, %%zmm22, %%zmm22\n\t"
      "vpxord %%zmm23, %%zmm23, %%zmm23\n\t"
      "1:\n\t"
      "vmovdqa64 (%[b]), %%zmm26\n\t"
      "vpslld $16, %%zmm26, %%zmm24\n\t"
      "vpandd %%zmm27, %%zmm26, %%zmm25\n\t"
      "vfmadd231ps 0(%[a0])%{1to16%}, %%zmm24, %%zmm0\n\t"
      "vfmadd231ps 0(%[a0])%{1to16%}, %%zmm25, %%zmm1\n\t"
      "vfmadd231ps 4(%[a0])%{1to16%}, %%zmm24, %%zmm2\n\t"
      "vfmadd231ps 4(%[a0])%{1to16%}, %%zmm25, %%zmm3\n\t"
      "vfmadd231ps 8(%[a0])%{1to16%}, %%zmm24, %%zmm4\n\t"
      "vfmadd231ps 8(%[a0])%{1to16%}, %%zmm25, %%zmm5\n\t"
      "vfmadd231ps 12(%[a0])%{1to16%}, %%zmm24, %%zmm6\n\t"
      "vfmadd231ps 12(%[a0])%{1to16%}, %%zmm25, %%zmm7\n\t"
      "vfmadd231ps 16(%[a0])%{1to16%}, %%zmm24, %%zmm8\n\t"
      "vfmadd231ps 16(%[a0])%{1to16%}, %%zmm25, %%zmm9\n\t"
      "vfmadd231ps 20(%[a0])%{1to16%}, %%zmm24, %%zmm10\n\t"
      "vfmadd231ps 20(%[a0])%{1to16%}, %%zmm25, %%zmm11\n\t"
      "vfmadd231ps 0(%[a1])%{1to16%}, %%zmm24, %%zmm12\n\t"
      "vfmadd231ps 0(%[a1])%{1to16%}, %%zmm25, %%zmm13\n\t"
      "vfmadd231ps 4(%[a1])%{1to16%}, %%zmm24, %%zmm14\n\t"
      "vfmadd231ps 4(%[a1])%{1to16%}, %%zmm25, %%zmm15\n\t"
      "vfmadd231ps 8(%[a1])%{1to16%}, %%zmm24, %%zmm16\n\t"
      "vfmadd231ps 8(%[a1])%{1to16%}, %%zmm25, %%zmm17\n\t"
      "vfmadd231ps 12(%[a1])%{1to16%}, %%zmm24, %%zmm18\n\t"
      "vfmadd231ps 12(%[a1])%{1to16%}, %%zmm25, %%zmm19\n\t"
      "vfmadd231ps 16(%[a1])%{1to16%}, %%zmm24, %%zmm20\n\t"
      "vfmadd231ps 16(%[a1])%{1to16%}, %%zmm25, %%zmm21\n\t"
      "vfmadd231ps 20(%[a1])%{1to16%}, %%zmm24, %%zmm22\n\t"
      "vfmadd231ps 20(%[a1])%{1to16%}, %%zmm25, %%zmm23\n\t"
      "add $24, %[a0]\n\t"
      "add $24, %[a1]\n\t"
      "add $64, %[b]\n\t"
      "dec %[n]\n\t"
      "jnz 1b\n\t"
      "vmovaps %%zmm0, 0(%[out])\n\t"
      "vmovaps %%zmm1, 64(%[out])\n\t"
      "vmovaps %%zmm2, 128(%[out])\n\t"
      "vmovaps %%zmm3, 192(%[out])\n\t"
      "vmovaps %%zmm4, 256(%[out])\n\t"
      "vmovaps %%zmm5, 320(%[out])\n\t"
      "vmovaps %%zmm6, 384(%[out])\n\t"
      "vmovaps %%zmm7, 448(%[out])\n\t"
      "vmovaps %%zmm8, 512(%[out])\n\t"
      "vmovaps %%zmm9, 576(%[out])\n\t"
      "vmovaps %%zmm10, 640(%[out])\n\t"
      "vmovaps %%zmm11, 704(%[out])\n\t"
      "vmovaps %%zmm12, 768(%[out])\n\t"
      "vmovaps %%zmm13, 832(%[out])\n\t"
      "vmovaps %%zmm14, 896(%[out])\n\t"
      "vmovaps %%zmm15, 960(%[out])\n\t"
      "vmovaps %%zmm16, 1024(%[out])\n\t"
      "vmovaps %%zmm17, 1088(%[out])\n\t"
      "vmovaps %%zmm18, 1152(%[out])\n\t"
      "vmovaps %%zmm19, 1216(%[out])\n\t"
      "vmovaps %%zmm20, 1280(%[out])\n\t"
      "vmovaps %%zmm21, 1344(%[out])\n\t"
      "vmovaps %%zmm22, 1408(%[out])\n\t"
      "vmovaps %%zmm23, 1472(%[out])\n\t"
      : [a0] "+r"(a0), [a1] "+r"(a1), [b] "+r"(b), [n] "+r"(n)
      : [out] "r"(&acc[0][0]), [hm] "m"(hi_mask)
      : "memory", "cc", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8",
        "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15", "xmm16", "xmm17", "xmm18",
        "xmm19", "xmm20", "xmm21", "xmm22", "xmm23", "xmm24", "xmm25", "xmm26", "xmm27");
  store_tile(acc, c, c_rs, mr, nr, read_c);
}

// The FMA path's operands for gemm_range: a step is one input, A f32, B one 32-column
// sliver of bf16 values (pack_b_fma: 64 bytes a step).
struct FmaPath {
  const float* x;
  int64_t ldx;
  const uint16_t* w;
  int64_t ld, k;
  static constexpr int64_t kStepsPerBlock = kKC;
  static constexpr int64_t kTileStepBytes = kNR * 2;
  int64_t steps() const { return k; }
  void pack_a(void* dst, int64_t i0, int mr, int64_t s0, int64_t ks) const {
    avx2::pack_a_strided(static_cast<float*>(dst), x, ldx, 1, i0, mr, s0, ks);
  }
  void pack_b(void* dst, int64_t j0, int nr, int64_t s0, int64_t ks) const {
    pack_b_fma(static_cast<uint16_t*>(dst), w, ld, j0, nr, s0, ks);
  }
  static void micro(int64_t ks, const void* a0, const void* a1, const void* b, float* c,
                    int64_t c_rs, int mr, int nr, bool read_c) {
    micro_12x32(ks, static_cast<const float*>(a0), static_cast<const float*>(a1),
                static_cast<const uint16_t*>(b), c, c_rs, mr, nr, read_c);
  }
};

// ---- bf16 x bf16 dot products (AVX512_BF16, vdpbf16ps) ---------------------------------
// x rounded once per call to bf16 (round to nearest even, NaN kept quiet: f32_to_bf16 of
// half.h), then each step multiplies a pair of inputs of 32 columns: the products of two
// bf16 values are exact in f32 and are summed in f32, so the only difference from the f32
// FMA path is the rounding of x, a relative error of at most 2^-8 per product (~1e-3 on a
// layer output; the weights' own bf16 rounding is of the same size). vdpbf16ps flushes
// subnormal inputs and results to zero (|x| < 1.2e-38). Twice the multiply-adds per
// instruction of the FMA path, and no widening in the loop.

constexpr int64_t kKCd = 2048;  // inputs per k block (even: a block starts on a pair)

// xb[i * kp + s] = the bf16 pair (x[i][2s], x[i][2s + 1]) of row i, kp = ceil(k / 2), the
// odd input of an odd k paired with zero.
void round_rows_bf16(const float* x, int64_t ldx, int64_t k, int64_t i0, int64_t i1, uint32_t* xb) {
  const int64_t kp = (k + 1) / 2;
  const __m512i one = _mm512_set1_epi32(1), round = _mm512_set1_epi32(0x7fff);
  const __m512i abs = _mm512_set1_epi32(0x7fffffff), inf = _mm512_set1_epi32(0x7f800000);
  const __m512i quiet = _mm512_set1_epi32(0x40);
  for (int64_t i = i0; i < i1; ++i) {
    auto* out = reinterpret_cast<uint16_t*>(xb + i * kp);
    out[2 * kp - 1] = 0;  // the pad of an odd k
    for (int64_t p = 0; p < k; p += 16) {
      const __mmask16 mk = static_cast<__mmask16>(k - p >= 16 ? 0xffff : (1u << (k - p)) - 1u);
      const __m512i u = _mm512_castps_si512(_mm512_maskz_loadu_ps(mk, x + i * ldx + p));
      const __m512i r = _mm512_srli_epi32(
          _mm512_add_epi32(
              u, _mm512_add_epi32(round, _mm512_and_si512(_mm512_srli_epi32(u, 16), one))),
          16);
      const __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(u, abs), inf);
      const __m512i h = _mm512_mask_or_epi32(r, nan, _mm512_srli_epi32(u, 16), quiet);
      _mm256_mask_storeu_epi16(out + p, mk, _mm512_cvtepi32_epi16(h));
    }
  }
}

// A sliver: dst[s * 6 + ii] = xb[(i0 + ii) * kp + s0 + s] for ks steps; rows ii >= mr zero.
void pack_a_pairs(
    uint32_t* dst, const uint32_t* xb, int64_t kp, int64_t i0, int mr, int64_t s0, int64_t ks) {
  for (int ii = 0; ii < kSR; ++ii) {
    const uint32_t* row = xb + (i0 + ii) * kp + s0;
    for (int64_t st = 0; st < ks; ++st) dst[st * kSR + ii] = ii < mr ? row[st] : 0u;
  }
}

// B sliver of 16 columns j0 .. j0 + nr (rows of W, stride ld) over the steps [s0, s0 + ks):
// dst[st * 16 + jj] = the pair (W[j0 + jj][2(s0 + st)], W[..][2(s0 + st) + 1]), the input
// past an odd k and columns >= nr zero.
void pack_b_pairs(uint32_t* dst,
                  const uint16_t* w,
                  int64_t ld,
                  int64_t k,
                  int64_t j0,
                  int nr,
                  int64_t s0,
                  int64_t ks) {
  const int64_t full = std::min(ks, k / 2 - s0);  // steps whose both inputs are < k
  int64_t st = 0;
  for (; st + 8 <= full; st += 8)
    for (int half = 0; half < 2; ++half) {
      __m256 r[8];
      for (int i = 0; i < 8; ++i) {
        const int jj = 8 * half + i;
        r[i] = jj < nr ? _mm256_loadu_ps(
                             reinterpret_cast<const float*>(w + (j0 + jj) * ld + 2 * (s0 + st)))
                       : _mm256_setzero_ps();
      }
      avx2::transpose8(r);
      for (int e = 0; e < 8; ++e)
        _mm256_store_ps(reinterpret_cast<float*>(dst + (st + e) * kInt16Cols + 8 * half), r[e]);
    }
  for (; st < ks; ++st)
    for (int jj = 0; jj < kInt16Cols; ++jj) {
      uint32_t v = 0;
      if (jj < nr) {
        const int64_t p = 2 * (s0 + st);
        const uint16_t* row = w + (j0 + jj) * ld;
        v = row[p] | (p + 1 < k ? static_cast<uint32_t>(row[p + 1]) << 16 : 0u);
      }
      dst[st * kInt16Cols + jj] = v;
    }
}

// C tile (mr x nr of 12 x 32) (+)= the A slivers a0, a1 times the B slivers b0, b1 over
// `steps` steps of 32 bits: pairs of bf16 inputs (vdpbf16ps) or f32 inputs (vfmadd231ps).
template <bool kBf16Pairs>
void micro_steps_12x32(int64_t steps,
                       const void* a0,
                       const void* a1,
                       const void* b0,
                       const void* b1,
                       float* c,
                       int64_t c_rs,
                       int mr,
                       int nr,
                       bool read_c) {
  alignas(64) float acc[kMR][kNR];
  if constexpr (kBf16Pairs) {
    LMX_VNNI_TILE_LOOP("vdpbf16ps");
  } else {
    LMX_VNNI_TILE_LOOP("vfmadd231ps");
  }
  store_tile(acc, c, c_rs, mr, nr, read_c);
}

// The dot-product path's operands: a step is a pair of inputs, A the rounded x (xb, kp
// steps a row), B two 16-column slivers of pairs (the tile's 64 + 64 bytes a step).
struct DotPath {
  const uint32_t* xb;
  int64_t kp;
  const uint16_t* w;
  int64_t ld, k;
  static constexpr int64_t kStepsPerBlock = kKCd / 2;
  static constexpr int64_t kTileStepBytes = kNR * 4;
  int64_t steps() const { return kp; }
  void pack_a(void* dst, int64_t i0, int mr, int64_t s0, int64_t ks) const {
    pack_a_pairs(static_cast<uint32_t*>(dst), xb, kp, i0, mr, s0, ks);
  }
  void pack_b(void* dst, int64_t j0, int nr, int64_t s0, int64_t ks) const {
    auto* d = static_cast<uint32_t*>(dst);
    for (int h = 0; h < 2; ++h)
      pack_b_pairs(d + h * ks * kInt16Cols, w, ld, k, j0 + h * kInt16Cols,
                   std::clamp(nr - h * kInt16Cols, 0, kInt16Cols), s0, ks);
  }
  static void micro(int64_t ks, const void* a0, const void* a1, const void* b, float* c,
                    int64_t c_rs, int mr, int nr, bool read_c) {
    micro_steps_12x32<true>(ks, a0, a1, b, static_cast<const uint32_t*>(b) + ks * kInt16Cols, c,
                            c_rs, mr, nr, read_c);
  }
};

// ---- f32 weights (FMA) ------------------------------------------------------------------
// A the 6-row f32 slivers of the FMA path, B two 16-column f32 slivers (avx2::pack_b_rows'
// layout, 64 + 64 bytes a step), the step loop of tile_loop_avx512.h with vfmadd231ps:
// twice the AVX2 6 x 16 kernel's columns per instruction. The k blocks are the AVX2
// GEMM's (avx2::F32Sliver::kc), so every output is the same chain of fused multiply-adds
// in the same order, then added to the earlier blocks' sum: this tier and the AVX2 one
// give the same bits.

struct F32Path {
  const float* x;
  int64_t ldx;
  const float* w;
  int64_t ld, k;
  static constexpr int64_t kStepsPerBlock = avx2::F32Sliver::kc;
  static constexpr int64_t kTileStepBytes = kNR * 4;
  int64_t steps() const { return k; }
  void pack_a(void* dst, int64_t i0, int mr, int64_t s0, int64_t ks) const {
    avx2::pack_a_strided(static_cast<float*>(dst), x, ldx, 1, i0, mr, s0, ks);
  }
  void pack_b(void* dst, int64_t j0, int nr, int64_t s0, int64_t ks) const {
    auto decode8 = [&](int64_t row, int64_t p) { return _mm256_loadu_ps(w + row * ld + p); };
    auto scalar = [&](int64_t row, int64_t p) { return w[row * ld + p]; };
    auto* d = static_cast<float*>(dst);
    for (int h = 0; h < 2; ++h)
      avx2::pack_b_rows(d + h * ks * avx2::kNR, j0 + h * avx2::kNR,
                        std::clamp(nr - h * avx2::kNR, 0, avx2::kNR), s0, ks, decode8, scalar);
  }
  static void micro(int64_t ks, const void* a0, const void* a1, const void* b, float* c,
                    int64_t c_rs, int mr, int nr, bool read_c) {
    micro_steps_12x32<false>(ks, a0, a1, b, static_cast<const float*>(b) + ks * avx2::kNR, c,
                             c_rs, mr, nr, read_c);
  }
};

// y[0:m, n0:n1] = x @ W^T on the calling thread, for any path P. Steps (inputs or pairs)
// in blocks of P::kStepsPerBlock; per block the B panel of up to kNC columns is packed in
// 32-column tiles, then A in kMC-row blocks of 6-row slivers (4 bytes a row and step on both
// paths), each run against every tile of the panel.
template <class P>
void gemm_range(const P& op, int64_t m, int64_t n0, int64_t n1, float* y, int64_t ldy) {
  constexpr int64_t kKS = P::kStepsPerBlock;
  const int64_t ks_max = std::min(kKS, op.steps());
  const int64_t tiles_max = (std::min(kNC, n1 - n0) + kNR - 1) / kNR;
  thread_local avx2::Scratch a_buf, b_buf;
  auto* ap = a_buf.get_as<uint32_t>(static_cast<size_t>(kMC * ks_max));
  auto* bp = b_buf.get_as<uint8_t>(static_cast<size_t>(tiles_max * ks_max * P::kTileStepBytes));
  for (int64_t jc = n0; jc < n1; jc += kNC) {
    const int64_t nc = std::min(kNC, n1 - jc);
    for (int64_t s0 = 0; s0 < op.steps(); s0 += kKS) {
      const int64_t ks = std::min(kKS, op.steps() - s0);
      const int64_t tb = ks * P::kTileStepBytes;  // bytes of a packed tile
      for (int64_t jr = 0; jr < nc; jr += kNR)
        op.pack_b(bp + jr / kNR * tb, jc + jr, static_cast<int>(std::min<int64_t>(kNR, nc - jr)),
                  s0, ks);
      for (int64_t ic = 0; ic < m; ic += kMC) {
        const int64_t mc = std::min(kMC, m - ic);
        // 6-row slivers, a zero one where a tile's second half is past m.
        for (int64_t ir = 0; ir < (mc + kMR - 1) / kMR * kMR; ir += kSR)
          op.pack_a(ap + ir * ks, ic + ir, static_cast<int>(std::clamp<int64_t>(mc - ir, 0, kSR)),
                    s0, ks);
        for (int64_t jr = 0; jr < nc; jr += kNR) {
          const int nr = static_cast<int>(std::min<int64_t>(kNR, nc - jr));
          for (int64_t ir = 0; ir < mc; ir += kMR) {
            const uint32_t* a0 = ap + ir * ks;
            P::micro(ks, a0, a0 + kSR * ks, bp + jr / kNR * tb, y + (ic + ir) * ldy + jc + jr, ldy,
                     static_cast<int>(std::min<int64_t>(kMR, mc - ir)), nr, s0 > 0);
          }
        }
      }
    }
  }
}

// Threads split n in whole 32-column tiles.
void split_cols(int64_t n, int t, int nt, int64_t& n0, int64_t& n1) {
  const int64_t tiles = (n + kNR - 1) / kNR;
  n0 = std::min(n, tiles * t / nt * kNR);
  n1 = std::min(n, tiles * (t + 1) / nt * kNR);
}

}  // namespace

void matmul_nt_f32_gemm_avx512(const float* x,
                               int64_t ldx,
                               const DenseWeightView& w,
                               float* y,
                               int64_t ldy,
                               int64_t m,
                               ThreadPool& pool) {
  if (w.k == 0) {
    for (int64_t i = 0; i < m; ++i) std::fill(y + i * ldy, y + i * ldy + w.n, 0.0f);
    return;
  }
  const auto* wf = static_cast<const float*>(w.data);
  // One thread per 64K multiply-adds, the AVX2 GEMM's rule (gemm_nt_packed).
  const int64_t threads =
      std::min<int64_t>(pool.num_threads(), std::max<int64_t>(1, (m * w.n * w.k) >> 16));
  // Every thread packs the A rows and the B columns it runs over: with more rows than
  // columns (an encoder's batch of thousands of tokens against a few hundred outputs)
  // threads split the rows in whole A blocks, so x is packed once instead of once a thread.
  // Which thread computes an output changes none of its bits.
  const bool by_rows = m > w.n;
  run_on(
      pool,
      [&](int t, int nt) {
        if (by_rows) {
          const int64_t blocks = (m + kMC - 1) / kMC;
          const int64_t i0 = std::min(m, blocks * t / nt * kMC), i1 = std::min(m, blocks * (t + 1) / nt * kMC);
          if (i0 < i1) gemm_range(F32Path{x + i0 * ldx, ldx, wf, w.ld, w.k}, i1 - i0, 0, w.n, y + i0 * ldy, ldy);
          return;
        }
        int64_t n0, n1;
        split_cols(w.n, t, nt, n0, n1);
        if (n0 < n1) gemm_range(F32Path{x, ldx, wf, w.ld, w.k}, m, n0, n1, y, ldy);
      },
      static_cast<int>(threads));
}

void matmul_nt_bf16_gemm_avx512(const float* x,
                                int64_t ldx,
                                const DenseWeightView& w,
                                float* y,
                                int64_t ldy,
                                int64_t m,
                                ThreadPool& pool) {
  const auto* wb = static_cast<const uint16_t*>(w.data);
  if (w.k == 0) {
    for (int64_t i = 0; i < m; ++i) std::fill(y + i * ldy, y + i * ldy + w.n, 0.0f);
    return;
  }
  auto cols = [&](int t, int nt, int64_t& n0, int64_t& n1) { split_cols(w.n, t, nt, n0, n1); };
  if (cpu_features().use_avx512_bf16()) {
    const int64_t kp = (w.k + 1) / 2;
    thread_local avx2::Scratch x_buf;
    uint32_t* xb = x_buf.get_as<uint32_t>(static_cast<size_t>(m * kp));
    run_on(pool,
           [&](int t, int nt) { round_rows_bf16(x, ldx, w.k, m * t / nt, m * (t + 1) / nt, xb); });
    run_on(pool, [&](int t, int nt) {
      int64_t n0, n1;
      cols(t, nt, n0, n1);
      if (n0 < n1) gemm_range(DotPath{xb, kp, wb, w.ld, w.k}, m, n0, n1, y, ldy);
    });
    return;
  }
  run_on(pool, [&](int t, int nt) {
    int64_t n0, n1;
    cols(t, nt, n0, n1);
    if (n0 < n1) gemm_range(FmaPath{x, ldx, wb, w.ld, w.k}, m, n0, n1, y, ldy);
  });
}

}  // namespace lmx::cpu::detail

#include "lmx/backend/cpu/avx512_target_end.h"
