#include "lmx/backend/cpu/norm.h"

#include <algorithm>
#include <cmath>

#include "lmx/backend/cpu/cpu_features.h"
#include "lmx/backend/cpu/norm_avx2.h"
#include "lmx/backend/cpu/norm_avx512.h"
#include "lmx/base/error.h"
#include "lmx/core/half.h"

namespace lmx::cpu {

namespace {

float channel(const ChannelVector& v, int64_t i) {
  switch (v.dtype) {
    case Dtype::f16:
      return f16_to_f32(static_cast<const uint16_t*>(v.data)[i]);
    case Dtype::bf16:
      return bf16_to_f32(static_cast<const uint16_t*>(v.data)[i]);
    default:
      return static_cast<const float*>(v.data)[i];
  }
}

// Rows per parallel chunk so that each chunk holds ~16K elements.
int64_t row_grain(int64_t dim) { return std::max<int64_t>(1, 16384 / std::max<int64_t>(dim, 1)); }

void rms_norm_rows_scalar(const float* x,
                          int64_t rows,
                          int64_t dim,
                          int64_t ldx,
                          float* out,
                          int64_t ldo,
                          const RmsNormOptions& o) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * ldx;
    float* yr = out + r * ldo;
    double ss = 0.0;
    for (int64_t i = 0; i < dim; ++i) ss += static_cast<double>(xr[i]) * xr[i];
    const float inv = 1.0f / std::sqrt(static_cast<float>(ss / static_cast<double>(dim)) + o.eps);
    for (int64_t i = 0; i < dim; ++i) {
      // Without a weight the scale is 1, with or without the unit offset.
      const float w =
          o.weight.data ? channel(o.weight, i) + (o.add_unit_offset ? 1.0f : 0.0f) : 1.0f;
      yr[i] = xr[i] * inv * w;
    }
  }
}

void layer_norm_rows_scalar(const float* x,
                            int64_t rows,
                            int64_t dim,
                            int64_t ldx,
                            float* out,
                            int64_t ldo,
                            const LayerNormOptions& o) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * ldx;
    float* yr = out + r * ldo;
    double s = 0.0;
    for (int64_t i = 0; i < dim; ++i) s += xr[i];
    const double mean = s / static_cast<double>(dim);
    double ss = 0.0;
    for (int64_t i = 0; i < dim; ++i) ss += (xr[i] - mean) * (xr[i] - mean);
    const float inv = 1.0f / std::sqrt(static_cast<float>(ss / static_cast<double>(dim)) + o.eps);
    const float meanf = static_cast<float>(mean);
    for (int64_t i = 0; i < dim; ++i) {
      float y = (xr[i] - meanf) * inv;
      if (o.weight.data) y *= channel(o.weight, i);
      if (o.bias.data) y += channel(o.bias, i);
      yr[i] = y;
    }
  }
}

// The vector row kernels of this CPU's tier (AVX-512 or AVX2), or null: the scalar rows.
const detail::NormRowKernels* vector_rows() {
#ifdef LMX_CPU_X86
  if (cpu_features().use_avx512()) return &detail::kNormRowsAvx512;
  if (cpu_features().use_avx2()) return &detail::kNormRowsAvx2;
#endif
  return nullptr;
}

}  // namespace

void rms_norm(const float* x,
              int64_t rows,
              int64_t dim,
              int64_t ldx,
              float* out,
              int64_t ldo,
              const RmsNormOptions& options,
              ThreadPool& pool) {
  if (rows <= 0 || dim <= 0) return;
  if (options.residual && !options.sum) throw InvalidArgument("rms_norm: a fused residual needs its sum's rows");
  const detail::NormRowKernels* vec = vector_rows();
  const auto rows_fn = vec ? vec->rms : rms_norm_rows_scalar;
  pool.parallel_for(rows, row_grain(dim), [&](int64_t r0, int64_t r1) {
    const float* src = x;
    int64_t ld_src = ldx;
    if (options.residual) {  // the rows' sums first, then the norm reads them
      for (int64_t r = r0; r < r1; ++r) {
        const float* a = x + r * ldx;
        const float* b = options.residual + r * options.ld_residual;
        float* s = options.sum + r * options.ld_sum;
        for (int64_t i = 0; i < dim; ++i) s[i] = a[i] + b[i];
      }
      src = options.sum, ld_src = options.ld_sum;
    }
    rows_fn(src + r0 * ld_src, r1 - r0, dim, ld_src, out + r0 * ldo, ldo, options);
  });
}

void layer_norm(const float* x,
                int64_t rows,
                int64_t dim,
                int64_t ldx,
                float* out,
                int64_t ldo,
                const LayerNormOptions& options,
                ThreadPool& pool) {
  if (rows <= 0 || dim <= 0) return;
  const detail::NormRowKernels* vec = vector_rows();
  const auto rows_fn = vec ? vec->layer : layer_norm_rows_scalar;
  pool.parallel_for(rows, row_grain(dim), [&](int64_t r0, int64_t r1) {
    rows_fn(x + r0 * ldx, r1 - r0, dim, ldx, out + r0 * ldo, ldo, options);
  });
}

}  // namespace lmx::cpu
