#include "lmx/backend/cpu/softmax.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "lmx/backend/cpu/cpu_features.h"
#include "lmx/backend/cpu/softmax_avx2.h"
#include "lmx/backend/cpu/softmax_avx512.h"

namespace lmx::cpu {

namespace {

int64_t row_grain(int64_t dim) { return std::max<int64_t>(1, 16384 / std::max<int64_t>(dim, 1)); }

void softmax_rows_scalar(
    const float* x, int64_t rows, int64_t dim, int64_t ldx, float* out, int64_t ldo) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * ldx;
    float* yr = out + r * ldo;
    float m = -std::numeric_limits<float>::infinity();
    for (int64_t i = 0; i < dim; ++i) m = std::max(m, xr[i]);
    if (m == -std::numeric_limits<float>::infinity()) {
      std::fill(yr, yr + dim, 0.0f);
      continue;
    }
    double s = 0.0;
    for (int64_t i = 0; i < dim; ++i) {
      yr[i] = std::exp(xr[i] - m);
      s += yr[i];
    }
    const float inv = static_cast<float>(1.0 / s);
    for (int64_t i = 0; i < dim; ++i) yr[i] *= inv;
  }
}

void log_softmax_rows_scalar(
    const float* x, int64_t rows, int64_t dim, int64_t ldx, float* out, int64_t ldo) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * ldx;
    float* yr = out + r * ldo;
    float m = -std::numeric_limits<float>::infinity();
    for (int64_t i = 0; i < dim; ++i) m = std::max(m, xr[i]);
    if (m == -std::numeric_limits<float>::infinity()) {
      std::fill(yr, yr + dim, m);
      continue;
    }
    double s = 0.0;
    for (int64_t i = 0; i < dim; ++i) s += std::exp(static_cast<double>(xr[i] - m));
    // (x - m) - log s: x - m is exact near the max, so large logits keep their
    // precision (m + log s rounded to one float would not).
    const float log_s = static_cast<float>(std::log(s));
    for (int64_t i = 0; i < dim; ++i) yr[i] = (xr[i] - m) - log_s;
  }
}

}  // namespace

namespace {

using RowsFn = detail::SoftmaxRowsFn;

// The vector row kernels of this CPU's tier (AVX-512 or AVX2), or null: the scalar rows.
const detail::SoftmaxRowKernels* vector_rows() {
#ifdef LMX_CPU_X86
  if (cpu_features().use_avx512()) return &detail::kSoftmaxRowsAvx512;
  if (cpu_features().use_avx2()) return &detail::kSoftmaxRowsAvx2;
#endif
  return nullptr;
}

// Splits rows over the pool and runs fn on each range.
void run_rows(RowsFn fn, const float* x, int64_t rows, int64_t dim, int64_t ldx, float* out,
              int64_t ldo, ThreadPool& pool) {
  if (rows <= 0 || dim <= 0) return;
  pool.parallel_for(rows, row_grain(dim), [&](int64_t r0, int64_t r1) {
    fn(x + r0 * ldx, r1 - r0, dim, ldx, out + r0 * ldo, ldo);
  });
}

}  // namespace

void softmax(const float* x, int64_t rows, int64_t dim, int64_t ldx, float* out, int64_t ldo, ThreadPool& pool) {
  const detail::SoftmaxRowKernels* vec = vector_rows();
  run_rows(vec ? vec->softmax : softmax_rows_scalar, x, rows, dim, ldx, out, ldo, pool);
}

void log_softmax(const float* x, int64_t rows, int64_t dim, int64_t ldx, float* out, int64_t ldo, ThreadPool& pool) {
  const detail::SoftmaxRowKernels* vec = vector_rows();
  run_rows(vec ? vec->log_softmax : log_softmax_rows_scalar, x, rows, dim, ldx, out, ldo, pool);
}

void cross_entropy_grad(const kernels::CrossEntropyGradArgs& a, ThreadPool& pool) {
  if (a.rows <= 0 || a.vocab <= 0) return;
  pool.parallel_for(a.rows, row_grain(a.vocab), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* x = a.logits + r * a.vocab;
      float* y = a.out + r * a.vocab;
      const float lse = a.lse[r], coef = a.coef[r];
      for (int64_t v = 0; v < a.vocab; ++v) y[v] = std::exp(x[v] - lse) * coef;
      const int64_t t = a.targets[r];
      if (t >= 0 && t < a.vocab) y[t] = (std::exp(x[t] - lse) - 1.0f) * coef;
    }
  });
}

}  // namespace lmx::cpu
