// Internal (AVX2 translation units only): the packed, register-tiled f32 GEMM driver
// shared by dense, strided and quantized matmuls. C[m, n] (+)= A[m, k] @ B[k, n], with A
// packed into 6-row k-major slivers and B into 16-column k-major slivers by caller-given
// packers (which convert or dequantize on the fly; 16-bit weights stay 16-bit and are
// widened in the loop), a 6x16 FMA microkernel (12 ymm accumulators), cache blocking
// kc x mc x nc per sliver kind, and per-thread workspaces reused across calls.
#pragma once

#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <new>

#include "lmx/base/thread_pool.h"

namespace lmx::cpu::detail::avx2 {

constexpr int kMR = 6;
constexpr int kNR = 16;
constexpr int64_t kNC = 1024;  // B panel: kc x 1024 values

// How a packed B sliver stores its kc x 16 values (the microkernel widens them to two f32
// vectors per k step), and the blocking that suits it: kc inputs per pass over C, A blocks
// of mc rows x kc (packed). Large kc means few passes over C and few microkernel
// epilogues; slivers and A blocks then live in L2, which the loop's 2 loads per 12 FMAs
// can afford.
// F32Sliver: 16 floats per k. kc 1024, mc 24: a 64 KiB sliver, a 96 KiB A block. Against
// 256 / 96 (a sliver in L1): f32 GEMM at 512 rows 167-182 -> 184-185 GFLOP/s
// (kernel_report, Llama-1B / Qwen-0.5B ffn_up).
struct F32Sliver {
  using T = float;
  static constexpr int64_t kc = 1024;
  static constexpr int64_t mc = 24;
  static void load(const T* b, __m256& b0, __m256& b1) {
    b0 = _mm256_load_ps(b);
    b1 = _mm256_load_ps(b + 8);
  }
};
// 16-bit weights (bf16, f16) stay 16-bit in the sliver, 16 per k step, and are widened
// inside the 6x16 loop: half the packing traffic of F32Sliver, and the widening runs
// beside the FMAs (the loop keeps its FMA rate on Zen 3 either way). kc 2048, mc 24 (a
// 64 KiB sliver and a 192 KiB A block in L2, a 4 MiB B panel in L3): one pass over C for
// k <= 2048 and few epilogues; 3.5% faster on Llama-1B's projections at 512 rows than
// kc 512 / mc 96, the best of kc 256-8192 x mc 6-192 x nc 512-2048 measured on Zen 3.
// Bf16PairSliver: 32-bit lane i holds column i in its low half and column i + 8 in its
// high half, so a shift and a mask give both vectors exactly.
struct Bf16PairSliver {
  using T = uint16_t;
  static constexpr int64_t kc = 2048;
  static constexpr int64_t mc = 24;
  static constexpr bool kPairsHalfApart = true;  // lane i = columns (i, i + 8)
  static void load(const T* b, __m256& b0, __m256& b1) {
    const __m256i v = _mm256_load_si256(reinterpret_cast<const __m256i*>(b));
    b0 = _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
    b1 = _mm256_castsi256_ps(_mm256_and_si256(v, _mm256_set1_epi32(static_cast<int>(0xFFFF0000u))));
  }
};
// F16Sliver: columns in order, two F16C conversions.
struct F16Sliver {
  using T = uint16_t;
  static constexpr int64_t kc = Bf16PairSliver::kc;
  static constexpr int64_t mc = Bf16PairSliver::mc;
  static constexpr bool kPairsHalfApart = false;  // lane i = columns (2i, 2i + 1)
  static void load(const T* b, __m256& b0, __m256& b1) {
    b0 = _mm256_cvtph_ps(_mm_load_si128(reinterpret_cast<const __m128i*>(b)));
    b1 = _mm256_cvtph_ps(_mm_load_si128(reinterpret_cast<const __m128i*>(b + 8)));
  }
};

// Grow-only 64-byte aligned scratch buffer, one per thread and use site.
struct Scratch {
  float* data = nullptr;
  size_t size = 0;
  ~Scratch() { std::free(data); }
  float* get(size_t n) {
    if (n > size) {
      std::free(data);
      size = (n + 15) / 16 * 16;
      data = static_cast<float*>(std::aligned_alloc(64, size * sizeof(float)));
      if (!data) {
        size = 0;
        throw std::bad_alloc();
      }
    }
    return data;
  }
  // n values of type T (2- or 4-byte).
  template <class T>
  T* get_as(size_t n) {
    return reinterpret_cast<T*>(get((n * sizeof(T) + sizeof(float) - 1) / sizeof(float)));
  }
};

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// Transposes 8 rows of 8 floats (r[i] = row i) in place into 8 columns.
inline void transpose8(__m256 r[8]) {
  __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
  __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
  __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
  __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
  __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
  __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
  __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
  __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
  r[0] = _mm256_permute2f128_ps(u0, u4, 0x20);
  r[1] = _mm256_permute2f128_ps(u1, u5, 0x20);
  r[2] = _mm256_permute2f128_ps(u2, u6, 0x20);
  r[3] = _mm256_permute2f128_ps(u3, u7, 0x20);
  r[4] = _mm256_permute2f128_ps(u0, u4, 0x31);
  r[5] = _mm256_permute2f128_ps(u1, u5, 0x31);
  r[6] = _mm256_permute2f128_ps(u2, u6, 0x31);
  r[7] = _mm256_permute2f128_ps(u3, u7, 0x31);
}

// Packs a B sliver for y = x @ W^T: dst[p][jj] = W[j0 + jj][p0 + p] for jj < 16 (zero
// for jj >= nr), p < kc. decode(row, p, out8) writes 8 consecutive dequantized/converted
// values of W row `row` starting at column p (p a multiple of 8 when whole); tail(row, p)
// returns one value.
template <class Decode8, class Scalar>
inline void pack_b_rows(float* dst,
                        int64_t j0,
                        int nr,
                        int64_t p0,
                        int64_t kc,
                        const Decode8& decode8,
                        const Scalar& scalar) {
  const int64_t kc8 = kc / 8 * 8;
  for (int half = 0; half < 2; ++half) {
    for (int64_t p = 0; p < kc8; p += 8) {
      __m256 r[8];
      for (int i = 0; i < 8; ++i) {
        const int jj = half * 8 + i;
        r[i] = jj < nr ? decode8(j0 + jj, p0 + p) : _mm256_setzero_ps();
      }
      transpose8(r);
      for (int i = 0; i < 8; ++i) _mm256_store_ps(dst + (p + i) * kNR + half * 8, r[i]);
    }
  }
  for (int64_t p = kc8; p < kc; ++p)
    for (int jj = 0; jj < kNR; ++jj) dst[p * kNR + jj] = jj < nr ? scalar(j0 + jj, p0 + p) : 0.0f;
}

// Packs a 16-bit sliver (BS = Bf16PairSliver or F16Sliver) for y = x @ W^T from a 16-bit
// W (row j at w + j * ld): at k step p, 32-bit lane i holds W rows (r0(i), r1(i)) at input
// p0 + p, low half first: (i, i + 8) when BS::kPairsHalfApart, else (2i, 2i + 1); zero
// for rows >= nr.
template <class BS>
inline void pack_b_16bit(
    uint16_t* dst, const uint16_t* w, int64_t ld, int64_t j0, int nr, int64_t p0, int64_t kc) {
  const uint16_t* rows[kNR];
  for (int jj = 0; jj < kNR; ++jj) rows[jj] = jj < nr ? w + (j0 + jj) * ld + p0 : nullptr;
  auto lane_rows = [](int i, int& r0, int& r1) {
    r0 = BS::kPairsHalfApart ? i : 2 * i;
    r1 = BS::kPairsHalfApart ? i + 8 : 2 * i + 1;
  };
  auto load8 = [&](int jj, int64_t p) {
    return rows[jj] ? _mm_loadu_si128(reinterpret_cast<const __m128i*>(rows[jj] + p))
                    : _mm_setzero_si128();
  };
  int64_t p = 0;
  for (; p + 8 <= kc; p += 8) {
    // Row i of the 8x8 (32-bit) block: lane i's row pair at inputs p..p+7.
    __m256 r[8];
    for (int i = 0; i < 8; ++i) {
      int r0, r1;
      lane_rows(i, r0, r1);
      const __m128i lo = load8(r0, p), hi = load8(r1, p);
      r[i] = _mm256_castsi256_ps(
          _mm256_set_m128i(_mm_unpackhi_epi16(lo, hi), _mm_unpacklo_epi16(lo, hi)));
    }
    transpose8(r);
    for (int e = 0; e < 8; ++e)
      _mm256_store_ps(reinterpret_cast<float*>(dst + (p + e) * kNR), r[e]);
  }
  for (; p < kc; ++p)
    for (int i = 0; i < 8; ++i) {
      int r0, r1;
      lane_rows(i, r0, r1);
      dst[p * kNR + 2 * i] = rows[r0] ? rows[r0][p] : uint16_t{0};
      dst[p * kNR + 2 * i + 1] = rows[r1] ? rows[r1][p] : uint16_t{0};
    }
}

// Packs an A sliver: dst[p][ii] = A(i0 + ii, p0 + p), zero for ii >= mr.
inline void pack_a_strided(float* dst,
                           const float* a,
                           int64_t rs,
                           int64_t cs,
                           int64_t i0,
                           int mr,
                           int64_t p0,
                           int64_t kc) {
  if (mr == kMR && cs == 1) {
    const float* rows[kMR];
    for (int ii = 0; ii < kMR; ++ii) rows[ii] = a + (i0 + ii) * rs + p0;
    int64_t p = 0;
    // 8 inputs of the 6 rows at a time: one 8x8 transpose (2 zero rows), then the first 6
    // lanes of each column.
    for (; p + 8 <= kc; p += 8) {
      __m256 r[8];
      for (int ii = 0; ii < kMR; ++ii) r[ii] = _mm256_loadu_ps(rows[ii] + p);
      r[6] = r[7] = _mm256_setzero_ps();
      transpose8(r);
      for (int e = 0; e < 8; ++e) {
        float* d = dst + (p + e) * kMR;
        _mm_storeu_ps(d, _mm256_castps256_ps128(r[e]));
        _mm_storel_pi(reinterpret_cast<__m64*>(d + 4), _mm256_extractf128_ps(r[e], 1));
      }
    }
    for (; p < kc; ++p)
      for (int ii = 0; ii < kMR; ++ii) dst[p * kMR + ii] = rows[ii][p];
    return;
  }
  for (int64_t p = 0; p < kc; ++p)
    for (int ii = 0; ii < kMR; ++ii)
      dst[p * kMR + ii] = ii < mr ? a[(i0 + ii) * rs + (p0 + p) * cs] : 0.0f;
}

// acc = A sliver (kc x 6) @ B sliver (kc x 16, stored as BS says); then C tile =
// alpha * acc + beta * C (C not read when read_c is false). Partial tiles (mr < 6 or
// nr < 16) or strided C go through a local tile.
template <class BS>
inline void micro_6x16(int64_t kc,
                       const float* a,
                       const typename BS::T* b,
                       float* c,
                       int64_t c_rs,
                       int64_t c_cs,
                       int mr,
                       int nr,
                       float alpha,
                       float beta,
                       bool read_c) {
  // C rows lie a whole output row apart: request the tile's lines while the k loop runs,
  // so the epilogue below does not wait on L3 or memory (Qwen ffn_up bf16 GEMM +6%).
  for (int i = 0; i < mr; ++i) {
    _mm_prefetch(reinterpret_cast<const char*>(c + i * c_rs), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(c + i * c_rs + (nr - 1) * c_cs), _MM_HINT_T0);
  }
  __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps();
  __m256 c10 = _mm256_setzero_ps(), c11 = _mm256_setzero_ps();
  __m256 c20 = _mm256_setzero_ps(), c21 = _mm256_setzero_ps();
  __m256 c30 = _mm256_setzero_ps(), c31 = _mm256_setzero_ps();
  __m256 c40 = _mm256_setzero_ps(), c41 = _mm256_setzero_ps();
  __m256 c50 = _mm256_setzero_ps(), c51 = _mm256_setzero_ps();
#pragma GCC unroll 4
  for (int64_t p = 0; p < kc; ++p) {
    __m256 b0, b1;
    BS::load(b, b0, b1);
    __m256 av = _mm256_broadcast_ss(a + 0);
    c00 = _mm256_fmadd_ps(av, b0, c00);
    c01 = _mm256_fmadd_ps(av, b1, c01);
    av = _mm256_broadcast_ss(a + 1);
    c10 = _mm256_fmadd_ps(av, b0, c10);
    c11 = _mm256_fmadd_ps(av, b1, c11);
    av = _mm256_broadcast_ss(a + 2);
    c20 = _mm256_fmadd_ps(av, b0, c20);
    c21 = _mm256_fmadd_ps(av, b1, c21);
    av = _mm256_broadcast_ss(a + 3);
    c30 = _mm256_fmadd_ps(av, b0, c30);
    c31 = _mm256_fmadd_ps(av, b1, c31);
    av = _mm256_broadcast_ss(a + 4);
    c40 = _mm256_fmadd_ps(av, b0, c40);
    c41 = _mm256_fmadd_ps(av, b1, c41);
    av = _mm256_broadcast_ss(a + 5);
    c50 = _mm256_fmadd_ps(av, b0, c50);
    c51 = _mm256_fmadd_ps(av, b1, c51);
    a += kMR;
    b += kNR;
  }
  const __m256 acc[kMR][2] = {{c00, c01}, {c10, c11}, {c20, c21},
                              {c30, c31}, {c40, c41}, {c50, c51}};
  const __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
  if (mr == kMR && nr == kNR && c_cs == 1) {
    for (int i = 0; i < kMR; ++i) {
      float* row = c + i * c_rs;
      for (int h = 0; h < 2; ++h) {
        __m256 v = _mm256_mul_ps(acc[i][h], va);
        if (read_c) v = _mm256_fmadd_ps(vb, _mm256_loadu_ps(row + h * 8), v);
        _mm256_storeu_ps(row + h * 8, v);
      }
    }
    return;
  }
  alignas(32) float tile[kMR][kNR];
  for (int i = 0; i < kMR; ++i) {
    _mm256_store_ps(tile[i], _mm256_mul_ps(acc[i][0], va));
    _mm256_store_ps(tile[i] + 8, _mm256_mul_ps(acc[i][1], va));
  }
  for (int i = 0; i < mr; ++i)
    for (int j = 0; j < nr; ++j) {
      float& out = c[i * c_rs + j * c_cs];
      out = read_c ? tile[i][j] + beta * out : tile[i][j];
    }
}

// Runs C[0:m, n0:n1] = alpha * A @ B + beta * C on the calling thread.
// pack_a(dst, i0, mr, p0, kc), pack_b(dst, j0, nr, p0, kc) as above (pack_b writing
// BS::T values in BS's layout).
template <class BS = F32Sliver, class PackA, class PackB>
void gemm_range(int64_t m,
                int64_t n0,
                int64_t n1,
                int64_t k,
                float alpha,
                float beta,
                float* c,
                int64_t c_rs,
                int64_t c_cs,
                const PackA& pack_a,
                const PackB& pack_b) {
  constexpr int64_t kKCB = BS::kc, kMCB = BS::mc;
  thread_local Scratch a_buf, b_buf;
  const int64_t kc_max = std::min(kKCB, k), nc_max = std::min(kNC, (n1 - n0 + kNR - 1) / kNR * kNR);
  float* ap = a_buf.get(static_cast<size_t>(kMCB * kc_max));
  auto* bp = b_buf.get_as<typename BS::T>(static_cast<size_t>(kc_max * nc_max));
  if (k == 0) {
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = n0; j < n1; ++j) {
        float& out = c[i * c_rs + j * c_cs];
        out = beta == 0.0f ? 0.0f : beta * out;
      }
    return;
  }
  for (int64_t jc = n0; jc < n1; jc += kNC) {
    const int64_t nc = std::min(kNC, n1 - jc);
    for (int64_t pc = 0; pc < k; pc += kKCB) {
      const int64_t kc = std::min(kKCB, k - pc);
      for (int64_t jr = 0; jr < nc; jr += kNR)
        pack_b(bp + jr * kc, jc + jr, static_cast<int>(std::min<int64_t>(kNR, nc - jr)), pc, kc);
      const bool first = pc == 0;
      const float beta_eff = first ? beta : 1.0f;
      const bool read_c = !first || beta != 0.0f;
      for (int64_t ic = 0; ic < m; ic += kMCB) {
        const int64_t mc = std::min(kMCB, m - ic);
        for (int64_t ir = 0; ir < mc; ir += kMR)
          pack_a(ap + ir * kc, ic + ir, static_cast<int>(std::min<int64_t>(kMR, mc - ir)), pc, kc);
        for (int64_t jr = 0; jr < nc; jr += kNR) {
          const int nr = static_cast<int>(std::min<int64_t>(kNR, nc - jr));
          for (int64_t ir = 0; ir < mc; ir += kMR) {
            const int mr = static_cast<int>(std::min<int64_t>(kMR, mc - ir));
            micro_6x16<BS>(kc, ap + ir * kc, bp + jr * kc, c + (ic + ir) * c_rs + (jc + jr) * c_cs,
                           c_rs, c_cs, mr, nr, alpha, beta_eff, read_c);
          }
        }
      }
    }
  }
}

// Splits [0, n) into per-thread ranges that are multiples of 16 columns.
inline void split_n(int64_t n, int t, int nt, int64_t& n0, int64_t& n1) {
  const int64_t tiles = (n + kNR - 1) / kNR;
  n0 = std::min(n, tiles * t / nt * kNR);
  n1 = std::min(n, tiles * (t + 1) / nt * kNR);
}

// y[m, n] = x[m, k] @ W^T (y overwritten), W packed by pack_b into BS slivers: threads
// split n in 16-column tiles.
template <class BS, class PackB>
void gemm_nt_packed(const float* x,
                    int64_t ldx,
                    int64_t m,
                    int64_t n,
                    int64_t k,
                    float* y,
                    int64_t ldy,
                    const PackB& pack_b,
                    ThreadPool& pool) {
  auto pack_a = [&](float* dst, int64_t i0, int mr, int64_t p0, int64_t kc) {
    pack_a_strided(dst, x, ldx, 1, i0, mr, p0, kc);
  };
  auto body = [&](int t, int nt) {
    int64_t n0, n1;
    split_n(n, t, nt, n0, n1);
    if (n0 < n1) gemm_range<BS>(m, n0, n1, k, 1.0f, 0.0f, y, ldy, 1, pack_a, pack_b);
  };
  // One thread per 64K multiply-adds, as the matvec's and attention's rule: a small model's
  // few-row pass (stories260K's speculative verify, 4 rows of 11K weights) stays on the
  // calling thread. Handing it to 2 threads made that verify 25x slower than plain decoding
  // on a loaded 2-core machine (spin and wake-up of a region per projection).
  const int64_t threads = std::min<int64_t>(pool.num_threads(), std::max<int64_t>(1, (m * n * k) >> 16));
  pool.run(std::cref(body), static_cast<int>(threads));
}

// y[m, n] = x[m, k] @ W^T for a W whose rows are produced on the fly: decode8(row, p) gives
// 8 values of row `row` from input p (a multiple of 8), scalar(row, p) one value (the
// k % 8 tail). Threads split n in 16-column tiles; B slivers are converted / dequantized
// to f32 while packing, so this serves f32 and quantized weights alike (16-bit weights
// take gemm_nt_16bit).
template <class Decode8, class Scalar>
void gemm_nt_rows(const float* x,
                  int64_t ldx,
                  int64_t m,
                  int64_t n,
                  int64_t k,
                  float* y,
                  int64_t ldy,
                  const Decode8& decode8,
                  const Scalar& scalar,
                  ThreadPool& pool) {
  auto pack_b = [&](float* dst, int64_t j0, int nr, int64_t p0, int64_t kc) {
    pack_b_rows(dst, j0, nr, p0, kc, decode8, scalar);
  };
  gemm_nt_packed<F32Sliver>(x, ldx, m, n, k, y, ldy, pack_b, pool);
}

// y[m, n] = x[m, k] @ W^T for a row-major 16-bit W (row stride ld) in BS's sliver
// layout (Bf16PairSliver for bf16, F16Sliver for f16): widened inside the microkernel.
template <class BS>
void gemm_nt_16bit(const float* x,
                   int64_t ldx,
                   int64_t m,
                   int64_t n,
                   int64_t k,
                   const uint16_t* w,
                   int64_t ld,
                   float* y,
                   int64_t ldy,
                   ThreadPool& pool) {
  auto pack_b = [&](uint16_t* dst, int64_t j0, int nr, int64_t p0, int64_t kc) {
    pack_b_16bit<BS>(dst, w, ld, j0, nr, p0, kc);
  };
  gemm_nt_packed<BS>(x, ldx, m, n, k, y, ldy, pack_b, pool);
}

// The scalar of gemm_nt_rows from decode8, for weights whose rows are padded to whole
// groups of 8 values (quantized layouts).
template <class Decode8>
auto scalar_from_decode8(const Decode8& decode8) {
  return [&decode8](int64_t row, int64_t p) {
    alignas(32) float t[8];
    _mm256_store_ps(t, decode8(row, p & ~int64_t{7}));
    return t[p & 7];
  };
}

}  // namespace lmx::cpu::detail::avx2
