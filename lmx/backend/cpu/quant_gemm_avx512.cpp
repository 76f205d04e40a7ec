// AVX-512 VNNI GEMM (prefill: m >= 4 rows of x) on packed MLX affine weights with integer
// activations: y = x @ dequant(W)^T. The method of the AVX2 int16 GEMM (quant_gemm_avx2.cpp,
// which also rounds x and packs the slivers for this tier): x rounded once per call per row
// and group, W's slivers unpacked to integer q, and per group the integer sums scaled by
// s[g, j] * dx[i, g] plus b[g, j] * sum(x)[i, g] in f32. Here the tile is 12 rows x 32
// columns (two 6-row A slivers, two 16-column B slivers of one zmm each), and the step loop
// is one VNNI instruction per row and half tile, x's step broadcast from memory:
// - int16 x (the default): vpdpwssd, 32 int16 multiply-adds (AVX2: vpmaddwd + vpaddd for
//   16). The integer sums are exact and the f32 epilogue runs the AVX2 kernel's operations
//   in its order, so both tiers give the same bits while k fits one k block of both (1536;
//   beyond, the blocks' f32 partial sums are added at other places).
// - int8 x (LMX_QUANT_ACTIVATIONS=int8): vpdpbusd, 64 multiply-adds of u8 weights (q in
//   0 .. 255) and s8 x (d = amax / 127 per group, ~1e-3 relative, as the int8 matvec and
//   llama.cpp's Q8 activations); the AVX2 GEMM rounds to int16 for this request.
// Partial tiles store through masks.
#include <immintrin.h>

#include <algorithm>

#include "lmx/backend/cpu/gemm_avx2.h"
#include "lmx/backend/cpu/matmul_kernels.h"
#include "lmx/backend/cpu/quant_gemm_integer.h"
#include "lmx/backend/cpu/tile_loop_avx512.h"
// Last: everything below is compiled for AVX-512.
#include "lmx/backend/cpu/avx512_target.h"

namespace lmx::cpu::detail {
namespace {

constexpr int kMR = 2 * kInt16SliverRows;  // 12 rows of x per tile: two A slivers
constexpr int kNR = 2 * kInt16SliverCols;  // 32 columns (W rows) per tile: two slivers
// Blocking: kc 2048 (Llama's k in one pass; a 128 KiB int16 sliver pair and a 96 KiB A block
// in L2), mc 24. Zen 5, 1 core, 512 rows, per-core rate against the AVX2 kernel in the same
// process: Qwen ffn_up kc 1536 / mc 24 1.63-1.68x, mc 48 1.55-1.68x, kc 768 / mc 48
// 1.56-1.66x, kc 256 1.29-1.34x (B in L1 but many passes over C); Llama ffn_up kc 2048
// against 1536: int16 260-281 -> 287-304 GOP/s, int8 383-464 -> 438-507.
constexpr int64_t kKC = 2048;  // inputs per k block (a multiple of every group)
constexpr int64_t kMC = 24;    // rows per A block (a multiple of the 12-row tile)
constexpr int64_t kNC = 1024;  // columns per B panel

// Masks of the columns < nr in the two 16-column halves of a tile.
inline __mmask16 half_mask(int nr, int h) {
  const int c = std::clamp(nr - 16 * h, 0, 16);
  return static_cast<__mmask16>((1u << c) - 1u);
}

// C tile (mr x nr of 12 x 32) (+)= the A slivers a0 (rows 0-5) and a1 (rows 6-11) times the
// B slivers b0 (columns 0-15) and b1 (16-31) over `groups` groups of GS inputs, on int16
// pairs (kInt8 false) or int8 quads. dx[ii * grs + g], xsum[ii * grs + g]: row ii's scale
// and input sum in group g (read for rows < mr only).
template <int GS, bool kInt8>
void micro_12x32(int64_t groups,
                 const int32_t* a0,
                 const int32_t* a1,
                 const uint8_t* b0,
                 const uint8_t* b1,
                 const float* dx,
                 const float* xsum,
                 int64_t grs,
                 float* c,
                 int64_t c_rs,
                 int mr,
                 int nr,
                 bool read_c) {
  // The f32 sums of rows < mr; not zero-filled (a 1.5 KiB memset was 4% of this function's
  // samples under perf): group 0 starts from zero instead of reading it.
  alignas(64) float tile[kMR][kNR];
  for (int64_t g = 0; g < groups; ++g) {
    alignas(64) __m512i acc[kMR][2];
    int64_t steps = kInt8 ? GS / 4 : GS / 2;
    if constexpr (kInt8)
      LMX_VNNI_TILE_LOOP("vpdpbusd");
    else
      LMX_VNNI_TILE_LOOP("vpdpwssd");
    const auto* sb0 = reinterpret_cast<const float*>(b0);
    const auto* sb1 = reinterpret_cast<const float*>(b1);
    const __m512 s[2] = {_mm512_load_ps(sb0), _mm512_load_ps(sb1)};
    const __m512 bias[2] = {_mm512_load_ps(sb0 + 16), _mm512_load_ps(sb1 + 16)};
    b0 += 2 * kInt16SliverCols * sizeof(float);  // past the scales and biases
    b1 += 2 * kInt16SliverCols * sizeof(float);
    for (int ii = 0; ii < mr; ++ii) {
      const __m512 d = _mm512_set1_ps(dx[ii * grs + g]);
      const __m512 xs = _mm512_set1_ps(xsum[ii * grs + g]);
      for (int h = 0; h < 2; ++h) {
        float* tr = tile[ii] + 16 * h;
        const __m512 prev = g == 0 ? _mm512_setzero_ps() : _mm512_load_ps(tr);
        const __m512 u =
            _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc[ii][h]), _mm512_mul_ps(s[h], d), prev);
        _mm512_store_ps(tr, _mm512_fmadd_ps(bias[h], xs, u));
      }
    }
  }
  const __mmask16 m[2] = {half_mask(nr, 0), half_mask(nr, 1)};
  for (int ii = 0; ii < mr; ++ii)
    for (int h = 0; h < 2; ++h) {
      float* out = c + ii * c_rs + h * 16;
      __m512 v = _mm512_load_ps(tile[ii] + 16 * h);
      if (read_c) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m[h], out));
      _mm512_mask_storeu_ps(out, m[h], v);
    }
}

// ---- B slivers with AVX-512 (weights of one 4- or 8-bit plane: nearly every checkpoint) --
// The layouts are those of pack_b_int16 / pack_b_int8 (quant_gemm_integer.h), bit for bit;
// other widths take those (AVX2) packers. A unit of the packed layout (64 inputs at 4 bits,
// 32 at 8) is 32 bytes = 8 dwords per W row, 4 rows (one block) contiguous, so the 16
// columns of a sliver are 8 zmm loads; a 16 x 8 dword transpose turns them into z[l], dword
// l of the 16 columns in lane order, and the steps come out of z by shifts and masks
// (4-bit: nibble p of dword l is input 8p + l) or a byte shuffle (8-bit: byte e of dword l is
// input 4l + e, stored as q - 128). The AVX2 packers move each value through a scalar-indexed
// 8-input load and an 8 x 8 transpose: perf put them at 12-14% of a prefill's samples.

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
constexpr TransposeIndex kTransposeIndex = make_transpose_index();

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

bool avx512_packable(const PackedQuantWeight& w) {
  return w.num_planes() == 1 && (w.plane_bits(0) == 4 || w.plane_bits(0) == 8);
}

// The B sliver of pack_b_int16 (kInt8 false) or pack_b_int8 (true) for a packable w.
template <bool kInt8>
void pack_b_avx512(
    uint8_t* dst, const PackedQuantWeight& w, int64_t j0, int nr, int64_t p0, int64_t kc) {
  const int gs = w.group_size();
  const int64_t gbytes = kInt8 ? group_bytes_int8(gs) : group_bytes_int16(gs);
  constexpr int kPer = kInt8 ? 4 : 2;  // inputs per step
  // Step at input i (relative to p0, a multiple of kPer): its 64 bytes in the sliver.
  auto store = [&](int64_t i, __m512i v) {
    if (i < kc) _mm512_store_si512(dst + i / gs * gbytes + i % gs / kPer * 64, v);
  };
  const bool four = w.plane_bits(0) == 4;
  const int64_t unit = four ? 64 : 32;  // inputs per unit; p0 is a multiple of both
  const __m512i nib2 = _mm512_set1_epi32(0x000F000F), flip = _mm512_set1_epi32(0x80808080);
  // 8-bit, int16 x: (byte 2e, byte 2e + 1) of each dword to the two 16-bit halves.
  const __m512i pair_bytes[2] = {_mm512_set1_epi32(static_cast<int>(0x80018000u)),
                                 _mm512_set1_epi32(static_cast<int>(0x80038002u))};
  const __m512i lane_base = _mm512_set1_epi32(0x04040404);
  __m512i lane_off = _mm512_setzero_si512();  // byte 4 (d % 4) of dword d: vpshufb is per lane
  {
    alignas(64) int32_t o[16];
    for (int d = 0; d < 16; ++d) o[d] = d % 4;
    lane_off = _mm512_mullo_epi32(_mm512_load_si512(o), lane_base);
  }
  for (int64_t i0 = 0; i0 < kc; i0 += unit) {
    __m512i z[8];
    load_unit(w, j0, nr, (p0 + i0) / unit, z);
    if (!four) {
      for (int l = 0; l < 8; ++l) {
        const __m512i q = _mm512_xor_si512(z[l], flip);  // q in 0 .. 255
        if constexpr (kInt8) {
          store(i0 + 4 * l, q);
        } else {
          for (int e = 0; e < 2; ++e)
            store(i0 + 4 * l + 2 * e,
                  _mm512_shuffle_epi8(q, _mm512_add_epi8(pair_bytes[e], lane_off)));
        }
      }
      continue;
    }
    constexpr __mmask32 kHigh = 0xAAAAAAAAu;  // the high 16 bits of each dword
    // lo: nibbles 0-3 of a in the low half, of b in the high; hi: nibbles 4-7.
    auto halves = [&](__m512i a, __m512i b, __m512i& lo, __m512i& hi) {
      lo = _mm512_mask_blend_epi16(kHigh, a, _mm512_slli_epi32(b, 16));
      hi = _mm512_mask_blend_epi16(kHigh, _mm512_srli_epi32(a, 16), b);
    };
    auto nibble = [&](__m512i lo, __m512i hi, int p) {  // nibble p of both halves
      return _mm512_and_si512(_mm512_srli_epi32(p < 4 ? lo : hi, 4 * (p % 4)), nib2);
    };
    if constexpr (kInt8) {
      // Step at 8p + 4h: byte e = nibble p of z[4h + e]; pairs (e, e + 2) share a dword.
      for (int h = 0; h < 2; ++h) {
        __m512i plo, phi, qlo, qhi;
        halves(z[4 * h], z[4 * h + 2], plo, phi);
        halves(z[4 * h + 1], z[4 * h + 3], qlo, qhi);
        for (int p = 0; p < 8; ++p)
          store(i0 + 8 * p + 4 * h, _mm512_or_si512(nibble(plo, phi, p),
                                                    _mm512_slli_epi32(nibble(qlo, qhi, p), 8)));
      }
    } else {
      // Step at 8p + 2t: nibble p of z[2t] (low half) and of z[2t + 1] (high half).
      for (int t = 0; t < 4; ++t) {
        __m512i lo, hi;
        halves(z[2 * t], z[2 * t + 1], lo, hi);
        for (int p = 0; p < 8; ++p) store(i0 + 8 * p + 2 * t, nibble(lo, hi, p));
      }
    }
  }
  for (int64_t g = 0; g < kc / gs; ++g)
    pack_scales_avx512(reinterpret_cast<float*>(dst + g * gbytes + gs / kPer * 64), w, j0, nr,
                       p0 / gs + g);
}

// x rounded to integers once per call, with the packers of its kind.
struct XInt16Kind {
  using X = XInt16;
  static constexpr bool kInt8 = false;
  static X quantize(const float* x, int64_t ldx, int64_t m, int64_t k, int gs, ThreadPool& pool) {
    return quantize_x_int16(x, ldx, m, k, gs, pool);
  }
  static constexpr int64_t group_bytes(int gs) { return group_bytes_int16(gs); }
  static void pack_a(int32_t* d, const X& x, int64_t i0, int mr, int64_t p0, int64_t kc) {
    pack_a_int16(d, x, i0, mr, p0, kc);
  }
  static void pack_b(
      uint8_t* d, const PackedQuantWeight& w, int64_t j0, int nr, int64_t p0, int64_t kc) {
    if (avx512_packable(w))
      pack_b_avx512<false>(d, w, j0, nr, p0, kc);
    else
      pack_b_int16(d, w, j0, nr, p0, kc);
  }
};
struct XInt8Kind {
  using X = XInt8;
  static constexpr bool kInt8 = true;
  static X quantize(const float* x, int64_t ldx, int64_t m, int64_t k, int gs, ThreadPool& pool) {
    return quantize_x_int8(x, ldx, m, k, gs, pool);
  }
  static constexpr int64_t group_bytes(int gs) { return group_bytes_int8(gs); }
  static void pack_a(int32_t* d, const X& x, int64_t i0, int mr, int64_t p0, int64_t kc) {
    pack_a_int8(d, x, i0, mr, p0, kc);
  }
  static void pack_b(
      uint8_t* d, const PackedQuantWeight& w, int64_t j0, int nr, int64_t p0, int64_t kc) {
    if (avx512_packable(w))
      pack_b_avx512<true>(d, w, j0, nr, p0, kc);
    else
      pack_b_int8(d, w, j0, nr, p0, kc);
  }
};

// C[0:m, n0:n1] = x @ dequant(W)^T on the calling thread.
template <int GS, class K>
void gemm_range(const typename K::X& x,
                const PackedQuantWeight& w,
                int64_t m,
                int64_t n0,
                int64_t n1,
                float* y,
                int64_t ldy) {
  constexpr int kS = kInt16SliverCols;
  constexpr int64_t kPer = K::kInt8 ? 4 : 2;  // inputs per 32-bit step
  const int64_t k = w.k();
  const int64_t kc_max = std::min(kKC, k);
  // Slivers of a panel, rounded up to whole tiles (an odd last sliver gets a zero partner).
  const int64_t slivers = (std::min(kNC, n1 - n0) + kNR - 1) / kNR * 2;
  const int64_t sliver_bytes = kc_max / GS * K::group_bytes(GS);
  thread_local avx2::Scratch a_buf, b_buf;
  auto* ap = a_buf.get_as<int32_t>(static_cast<size_t>(kMC * kc_max / kPer));
  auto* bp = b_buf.get_as<uint8_t>(static_cast<size_t>(slivers * sliver_bytes));
  for (int64_t jc = n0; jc < n1; jc += kNC) {
    const int64_t nc = std::min(kNC, n1 - jc);
    for (int64_t pc = 0; pc < k; pc += kKC) {
      const int64_t kc = std::min(kKC, k - pc);
      const int64_t sb = kc / GS * K::group_bytes(GS);
      const int64_t nsl = (nc + kNR - 1) / kNR * 2;
      for (int64_t s = 0; s < nsl; ++s)
        K::pack_b(bp + s * sb, w, jc + s * kS,
                  static_cast<int>(std::clamp<int64_t>(nc - s * kS, 0, kS)), pc, kc);
      for (int64_t ic = 0; ic < m; ic += kMC) {
        const int64_t mc = std::min(kMC, m - ic);
        // A in 6-row slivers, a zero one where a tile's second half is past m.
        constexpr int kS6 = kInt16SliverRows;
        for (int64_t ir = 0; ir < (mc + kMR - 1) / kMR * kMR; ir += kS6)
          K::pack_a(ap + ir * kc / kPer, x, ic + ir,
                    static_cast<int>(std::clamp<int64_t>(mc - ir, 0, kS6)), pc, kc);
        for (int64_t jr = 0; jr < nc; jr += kNR) {
          const int nr = static_cast<int>(std::min<int64_t>(kNR, nc - jr));
          const uint8_t* b0 = bp + jr / kS * sb;
          for (int64_t ir = 0; ir < mc; ir += kMR) {
            const int mr = static_cast<int>(std::min<int64_t>(kMR, mc - ir));
            const int64_t g0 = (ic + ir) * x.groups + pc / GS;
            const int32_t* a0 = ap + ir * kc / kPer;
            micro_12x32<GS, K::kInt8>(kc / GS, a0, a0 + kS6 * kc / kPer, b0, b0 + sb, x.dx + g0,
                                      x.sum + g0, x.groups, y + (ic + ir) * ldy + jc + jr, ldy, mr,
                                      nr, pc > 0);
          }
        }
      }
    }
  }
}

template <int GS, class K>
void gemm_int(const float* x,
              int64_t ldx,
              const PackedQuantWeight& w,
              float* y,
              int64_t ldy,
              int64_t m,
              ThreadPool& pool) {
  const typename K::X xq = K::quantize(x, ldx, m, w.k(), GS, pool);
  run_on(pool, [&](int t, int nt) {
    // Threads split n in whole 32-column tiles.
    const int64_t tiles = (w.n() + kNR - 1) / kNR;
    const int64_t n0 = std::min(w.n(), tiles * t / nt * kNR);
    const int64_t n1 = std::min(w.n(), tiles * (t + 1) / nt * kNR);
    if (n0 < n1) gemm_range<GS, K>(xq, w, m, n0, n1, y, ldy);
  });
}

template <class K>
bool gemm_int_any_group(const float* x,
                        int64_t ldx,
                        const PackedQuantWeight& w,
                        float* y,
                        int64_t ldy,
                        int64_t m,
                        ThreadPool& pool) {
  switch (w.group_size()) {
    case 32:
      gemm_int<32, K>(x, ldx, w, y, ldy, m, pool);
      return true;
    case 64:
      gemm_int<64, K>(x, ldx, w, y, ldy, m, pool);
      return true;
    case 128:
      gemm_int<128, K>(x, ldx, w, y, ldy, m, pool);
      return true;
    default:
      return false;
  }
}

}  // namespace

bool packed_gemm_int_avx512(const float* x,
                            int64_t ldx,
                            const PackedQuantWeight& w,
                            float* y,
                            int64_t ldy,
                            int64_t m,
                            ActivationPrecision activations,
                            ThreadPool& pool) {
  return activations == ActivationPrecision::int8
             ? gemm_int_any_group<XInt8Kind>(x, ldx, w, y, ldy, m, pool)
             : gemm_int_any_group<XInt16Kind>(x, ldx, w, y, ldy, m, pool);
}

}  // namespace lmx::cpu::detail

#include "lmx/backend/cpu/avx512_target_end.h"
