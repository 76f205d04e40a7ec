// AVX2/FMA/F16C dense kernels: y = x @ W^T (matvec for decode, packed GEMM for prefill)
// and the general strided batched f32 GEMM.
#include <immintrin.h>

#include <cstring>
#include <type_traits>

#include "lmx/backend/cpu/gemm_avx2.h"
#include "lmx/backend/cpu/matmul_kernels.h"
#include "lmx/base/thread_pool.h"

namespace lmx::cpu::detail {
namespace {

using namespace avx2;

template <Dtype D>
inline __m256 load8(const void* base, int64_t i) {
  if constexpr (D == Dtype::f32) {
    return _mm256_loadu_ps(static_cast<const float*>(base) + i);
  } else {
    const __m128i h =
        _mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(base) + i));
    if constexpr (D == Dtype::f16) {
      return _mm256_cvtph_ps(h);
    } else {
      return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
    }
  }
}

// Bytes ahead of the read position that the short-row matvec prefetches (measured on Zen 3,
// 2 threads: 512 B to 1.5 KiB within noise of each other, 2-4 KiB slower).
constexpr int64_t kRowPrefetchAhead = 1024;

// y[j] = W[j, :] . x for rows [j0, j1). Rows of up to 4 KiB (Qwen's k = 896, Llama's
// k = 2048 in bf16): the range is read as two sequential streams side by side (its two
// halves, one row of each at a time, alternating every 32 inputs), each prefetched 1 KiB
// ahead: a core keeps more lines in flight over two long streams than over one (see
// blocks_int in quant_avx2.cpp), while four rows read side by side made four streams of
// a few lines each that the hardware prefetcher never trained on (73% -> 90-95% of the
// read bandwidth on Qwen's ffn_up and lm_head for one stream). x stays in L1 either way.
// Longer rows: four rows per pass share each x load, two accumulators per row, each row's
// lines prefetched 1 KiB ahead.
template <Dtype D>
void matvec_rows(const float* x, const DenseWeightView& w, float* y, int64_t j0, int64_t j1) {
  const int64_t k = w.k, k16 = k / 16 * 16;
  const size_t es = dtype_size(D);
  auto row_ptr = [&](int64_t j) {
    return static_cast<const uint8_t*>(w.data) + j * w.ld * static_cast<int64_t>(es);
  };
  auto tail = [&](const void* row, int64_t p) { return load_scalar(row, D, p); };
  const bool short_rows = k * static_cast<int64_t>(es) <= 4096;
  int64_t j = j0;
  // NR rows side by side, four accumulators each, prefetching ahead of the read position.
  auto dot_rows = [&]<int NR>(const uint8_t* const* r, float* out) {
    __m256 a[NR][4];
    for (int i = 0; i < NR; ++i)
      for (int c = 0; c < 4; ++c) a[i][c] = _mm256_setzero_ps();
    int64_t p = 0;
    for (; p + 32 <= k; p += 32) {
      for (int i = 0; i < NR; ++i) {
        const char* ahead =
            reinterpret_cast<const char*>(r[i]) + p * static_cast<int64_t>(es) + kRowPrefetchAhead;
        _mm_prefetch(ahead, _MM_HINT_T0);
        if (es == 4) _mm_prefetch(ahead + 64, _MM_HINT_T0);
        for (int c = 0; c < 4; ++c)
          a[i][c] =
              _mm256_fmadd_ps(load8<D>(r[i], p + 8 * c), _mm256_loadu_ps(x + p + 8 * c), a[i][c]);
      }
    }
    const int64_t p32 = p;
    for (int i = 0; i < NR; ++i) {
      for (p = p32; p + 8 <= k; p += 8)
        a[i][0] = _mm256_fmadd_ps(load8<D>(r[i], p), _mm256_loadu_ps(x + p), a[i][0]);
      float sum =
          hsum(_mm256_add_ps(_mm256_add_ps(a[i][0], a[i][1]), _mm256_add_ps(a[i][2], a[i][3])));
      for (; p < k; ++p) sum += tail(r[i], p) * x[p];
      out[i] = sum;
    }
  };
  if (short_rows) {
    const int64_t half = (j1 - j0) / 2;
    for (int64_t i = 0; i < half; ++i) {
      const uint8_t* r[2] = {row_ptr(j0 + i), row_ptr(j0 + half + i)};
      float out[2];
      dot_rows.template operator()<2>(r, out);
      y[j0 + i] = out[0];
      y[j0 + half + i] = out[1];
    }
    for (j = j0 + 2 * half; j < j1; ++j) {
      const uint8_t* r = row_ptr(j);
      dot_rows.template operator()<1>(&r, y + j);
    }
    return;
  }
  for (; j + 4 <= j1; j += 4) {
    const void* r0 = row_ptr(j);
    const void* r1 = row_ptr(j + 1);
    const void* r2 = row_ptr(j + 2);
    const void* r3 = row_ptr(j + 3);
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(),
           a3 = _mm256_setzero_ps();
    __m256 b0 = _mm256_setzero_ps(), b1 = _mm256_setzero_ps(), b2 = _mm256_setzero_ps(),
           b3 = _mm256_setzero_ps();
    auto step16 = [&](int64_t p) {
      const __m256 x0 = _mm256_loadu_ps(x + p), x1 = _mm256_loadu_ps(x + p + 8);
      a0 = _mm256_fmadd_ps(load8<D>(r0, p), x0, a0);
      a1 = _mm256_fmadd_ps(load8<D>(r1, p), x0, a1);
      a2 = _mm256_fmadd_ps(load8<D>(r2, p), x0, a2);
      a3 = _mm256_fmadd_ps(load8<D>(r3, p), x0, a3);
      b0 = _mm256_fmadd_ps(load8<D>(r0, p + 8), x1, b0);
      b1 = _mm256_fmadd_ps(load8<D>(r1, p + 8), x1, b1);
      b2 = _mm256_fmadd_ps(load8<D>(r2, p + 8), x1, b2);
      b3 = _mm256_fmadd_ps(load8<D>(r3, p + 8), x1, b3);
    };
    // Each 64-byte line of the four rows prefetched kRowPrefetchAhead bytes ahead: the same
    // multiply-adds in the same order (the same bits) as before it (session 18, AMD EPYC
    // Zen 5: 47-64% -> 62-86% of a read measured just before, on Llama's and Qwen's
    // ffn_down in bf16; docs/performance.md).
    const int64_t line = 64 / static_cast<int64_t>(es);  // inputs per cache line
    int64_t p = 0;
    for (; p + line <= k16; p += line) {
      for (const void* r : {r0, r1, r2, r3})
        _mm_prefetch(static_cast<const char*>(r) + p * static_cast<int64_t>(es) + kRowPrefetchAhead,
                     _MM_HINT_T0);
      for (int64_t q = p; q < p + line; q += 16) step16(q);
    }
    for (; p < k16; p += 16) step16(p);
    float s[4] = {hsum(_mm256_add_ps(a0, b0)), hsum(_mm256_add_ps(a1, b1)),
                  hsum(_mm256_add_ps(a2, b2)), hsum(_mm256_add_ps(a3, b3))};
    const void* rows[4] = {r0, r1, r2, r3};
    for (int64_t p = k16; p < k; ++p)
      for (int r = 0; r < 4; ++r) s[r] += tail(rows[r], p) * x[p];
    for (int r = 0; r < 4; ++r) y[j + r] = s[r];
  }
  for (; j < j1; ++j) {
    const uint8_t* r = row_ptr(j);
    dot_rows.template operator()<1>(&r, y + j);
  }
}

template <Dtype D>
void matmul_nt_typed(const float* x,
                     int64_t ldx,
                     const DenseWeightView& w,
                     float* y,
                     int64_t ldy,
                     int64_t m,
                     ThreadPool& pool) {
  if (m == 1) {
    // Chunks of rows (multiples of 4), about 8 per thread, handed out as threads become
    // free (ThreadPool::run_dynamic): a thread that loses its core holds up little.
    const int64_t n = w.n;
    const int nt = static_cast<int>(std::max<int64_t>(
        1, std::min<int64_t>(pool.num_threads(), detail::threads_for_weights(n, w.k))));
    const int64_t chunk = std::max<int64_t>(64, (n / (8 * nt) + 3) / 4 * 4);
    run_dynamic_on(
        pool, (n + chunk - 1) / chunk,
        [&](int64_t c) { matvec_rows<D>(x, w, y, c * chunk, std::min(n, (c + 1) * chunk)); }, nt);
    return;
  }
  if constexpr (D != Dtype::f32) {
    using BS = std::conditional_t<D == Dtype::bf16, Bf16PairSliver, F16Sliver>;
    gemm_nt_16bit<BS>(x, ldx, m, w.n, w.k, static_cast<const uint16_t*>(w.data), w.ld, y, ldy,
                      pool);
    return;
  }
  const size_t es = dtype_size(D);
  auto decode8 = [&](int64_t row, int64_t p) {
    return load8<D>(static_cast<const uint8_t*>(w.data) + row * w.ld * static_cast<int64_t>(es), p);
  };
  auto scalar = [&](int64_t row, int64_t p) { return load_scalar(w.data, D, row * w.ld + p); };
  gemm_nt_rows(x, ldx, m, w.n, w.k, y, ldy, decode8, scalar, pool);
}

}  // namespace

void matmul_nt_avx2(const float* x,
                    int64_t ldx,
                    const DenseWeightView& w,
                    float* y,
                    int64_t ldy,
                    int64_t m,
                    ThreadPool& pool) {
  switch (w.dtype) {
    case Dtype::f16:
      matmul_nt_typed<Dtype::f16>(x, ldx, w, y, ldy, m, pool);
      break;
    case Dtype::bf16:
      matmul_nt_typed<Dtype::bf16>(x, ldx, w, y, ldy, m, pool);
      break;
    default:
      matmul_nt_typed<Dtype::f32>(x, ldx, w, y, ldy, m, pool);
      break;
  }
}

void gemm_f32_avx2(const GemmArgs& g, ThreadPool& pool) {
  auto one = [&](int64_t b, int64_t n0, int64_t n1) {
    const float* a = g.a + b * g.a_bs;
    const float* bm = g.b + b * g.b_bs;
    float* c = g.c + b * g.c_bs;
    auto pack_a = [&](float* dst, int64_t i0, int mr, int64_t p0, int64_t kc) {
      pack_a_strided(dst, a, g.a_rs, g.a_cs, i0, mr, p0, kc);
    };
    auto pack_b = [&](float* dst, int64_t j0, int nr, int64_t p0, int64_t kc) {
      if (nr == kNR && g.b_cs == 1) {
        for (int64_t p = 0; p < kc; ++p) {
          const float* src = bm + (p0 + p) * g.b_rs + j0;
          _mm256_store_ps(dst + p * kNR, _mm256_loadu_ps(src));
          _mm256_store_ps(dst + p * kNR + 8, _mm256_loadu_ps(src + 8));
        }
        return;
      }
      if (nr == kNR && g.b_rs == 1) {
        // B is a transposed row-major matrix: column j of B is contiguous in p.
        auto decode8 = [&](int64_t j, int64_t p) { return _mm256_loadu_ps(bm + j * g.b_cs + p); };
        auto scalar = [&](int64_t j, int64_t p) { return bm[j * g.b_cs + p]; };
        pack_b_rows(dst, j0, nr, p0, kc, decode8, scalar);
        return;
      }
      for (int64_t p = 0; p < kc; ++p)
        for (int jj = 0; jj < kNR; ++jj)
          dst[p * kNR + jj] = jj < nr ? bm[(p0 + p) * g.b_rs + (j0 + jj) * g.b_cs] : 0.0f;
    };
    gemm_range(g.m, n0, n1, g.k, g.alpha, g.beta, c, g.c_rs, g.c_cs, pack_a, pack_b);
  };
  const int nt = pool.num_threads();
  if (g.batch >= nt || g.m * g.n * g.k < (int64_t{1} << 16)) {
    // Independent products: one batch item per thread at a time.
    parallel_for_on(pool, g.batch, 1, [&](int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; ++b) one(b, 0, g.n);
    });
    return;
  }
  for (int64_t b = 0; b < g.batch; ++b) {
    run_on(pool, [&](int t, int tn) {
      int64_t n0, n1;
      split_n(g.n, t, tn, n0, n1);
      if (n0 < n1) one(b, n0, n1);
    });
  }
}

}  // namespace lmx::cpu::detail
