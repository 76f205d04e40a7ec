// NEON (aarch64 Advanced SIMD) y = x @ W^T for dense f32 / f16 / bf16 weights: the decode
// matvec (and, row by row, prefill). Weights widened to f32 in registers (f16 by fcvtl, bf16
// by a 16-bit shift, both exact), products summed by f32 FMA in 4 columns x 2 vectors of
// partial sums, the k tail in scalar f32.
#include <arm_neon.h>

#include <algorithm>

#include "lmx/backend/cpu/matmul_kernels.h"
#include "lmx/base/thread_pool.h"

namespace lmx::cpu::detail {
namespace {

// 4 weights of a row as f32.
template <Dtype D>
inline float32x4_t load4(const uint8_t* row, int64_t p) {
  if constexpr (D == Dtype::f32) {
    return vld1q_f32(reinterpret_cast<const float*>(row) + p);
  } else {
    const uint16x4_t h = vld1_u16(reinterpret_cast<const uint16_t*>(row) + p);
    if constexpr (D == Dtype::f16) return vcvt_f32_f16(vreinterpret_f16_u16(h));
    return vreinterpretq_f32_u32(vshll_n_u16(h, 16));
  }
}

// y[j] for the columns [j0, j1) of one x row.
template <Dtype D>
void row_columns(const float* x, const DenseWeightView& w, float* y, int64_t j0, int64_t j1) {
  constexpr int64_t kSize = D == Dtype::f32 ? 4 : 2;
  const int64_t k8 = w.k / 8 * 8;
  const auto* base = static_cast<const uint8_t*>(w.data);
  int64_t j = j0;
  for (; j + 4 <= j1; j += 4) {
    const uint8_t* rows[4];
    for (int c = 0; c < 4; ++c) rows[c] = base + (j + c) * w.ld * kSize;
    float32x4_t acc[4][2];
    for (auto& a : acc) a[0] = a[1] = vdupq_n_f32(0.0f);
    for (int64_t p = 0; p < k8; p += 8) {
      const float32x4_t x0 = vld1q_f32(x + p), x1 = vld1q_f32(x + p + 4);
      for (int c = 0; c < 4; ++c) {
        acc[c][0] = vfmaq_f32(acc[c][0], load4<D>(rows[c], p), x0);
        acc[c][1] = vfmaq_f32(acc[c][1], load4<D>(rows[c], p + 4), x1);
      }
    }
    for (int c = 0; c < 4; ++c) {
      float s = vaddvq_f32(vaddq_f32(acc[c][0], acc[c][1]));
      for (int64_t p = k8; p < w.k; ++p) s += x[p] * load_scalar(rows[c], D, p);
      y[j + c] = s;
    }
  }
  for (; j < j1; ++j) {
    const uint8_t* row = base + j * w.ld * kSize;
    float32x4_t a0 = vdupq_n_f32(0.0f), a1 = a0;
    for (int64_t p = 0; p < k8; p += 8) {
      a0 = vfmaq_f32(a0, load4<D>(row, p), vld1q_f32(x + p));
      a1 = vfmaq_f32(a1, load4<D>(row, p + 4), vld1q_f32(x + p + 4));
    }
    float s = vaddvq_f32(vaddq_f32(a0, a1));
    for (int64_t p = k8; p < w.k; ++p) s += x[p] * load_scalar(row, D, p);
    y[j] = s;
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
  // Columns in ranges of whole 4-column tiles with at least ~64K weights each.
  const int64_t grain = std::max<int64_t>(4, 65536 / std::max<int64_t>(w.k, 1) / 4 * 4);
  parallel_for_on(pool, w.n, grain, [&](int64_t j0, int64_t j1) {
    for (int64_t i = 0; i < m; ++i) row_columns<D>(x + i * ldx, w, y + i * ldy, j0, j1);
  });
}

}  // namespace

void matmul_nt_neon(const float* x,
                    int64_t ldx,
                    const DenseWeightView& w,
                    float* y,
                    int64_t ldy,
                    int64_t m,
                    ThreadPool& pool) {
  switch (w.dtype) {
    case Dtype::f16:
      return matmul_nt_typed<Dtype::f16>(x, ldx, w, y, ldy, m, pool);
    case Dtype::bf16:
      return matmul_nt_typed<Dtype::bf16>(x, ldx, w, y, ldy, m, pool);
    default:
      return matmul_nt_typed<Dtype::f32>(x, ldx, w, y, ldy, m, pool);
  }
}

}  // namespace lmx::cpu::detail
