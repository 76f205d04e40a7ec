// AVX2 RMSNorm / LayerNorm rows. See vec_math_avx2.h for the rules of AVX2 files.
#include "lmx/backend/cpu/norm_avx2.h"

#include <immintrin.h>

#include "lmx/backend/cpu/vec_math_avx2.h"

namespace lmx::cpu::detail {

namespace {

using avx2::load8;
using avx2::load_tail;

// Sum of squares of x[0..dim) (4 independent accumulators hide FMA latency).
inline float sum_squares(const float* x, int64_t dim) {
  __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  int64_t i = 0;
  for (; i + 32 <= dim; i += 32) {
    const __m256 v0 = _mm256_loadu_ps(x + i), v1 = _mm256_loadu_ps(x + i + 8);
    const __m256 v2 = _mm256_loadu_ps(x + i + 16), v3 = _mm256_loadu_ps(x + i + 24);
    a0 = _mm256_fmadd_ps(v0, v0, a0);
    a1 = _mm256_fmadd_ps(v1, v1, a1);
    a2 = _mm256_fmadd_ps(v2, v2, a2);
    a3 = _mm256_fmadd_ps(v3, v3, a3);
  }
  for (; i + 8 <= dim; i += 8) {
    const __m256 v = _mm256_loadu_ps(x + i);
    a0 = _mm256_fmadd_ps(v, v, a0);
  }
  if (i < dim) {
    const __m256 v = avx2::load_tail_f32(x + i, dim - i);
    a1 = _mm256_fmadd_ps(v, v, a1);
  }
  return avx2::hsum(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
}

inline float sum(const float* x, int64_t dim) {
  __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  int64_t i = 0;
  for (; i + 32 <= dim; i += 32) {
    a0 = _mm256_add_ps(a0, _mm256_loadu_ps(x + i));
    a1 = _mm256_add_ps(a1, _mm256_loadu_ps(x + i + 8));
    a2 = _mm256_add_ps(a2, _mm256_loadu_ps(x + i + 16));
    a3 = _mm256_add_ps(a3, _mm256_loadu_ps(x + i + 24));
  }
  for (; i + 8 <= dim; i += 8) a0 = _mm256_add_ps(a0, _mm256_loadu_ps(x + i));
  if (i < dim) a1 = _mm256_add_ps(a1, avx2::load_tail_f32(x + i, dim - i));
  return avx2::hsum(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
}

// Sum of (x - mean)^2: the two-pass variance, as torch computes it.
inline float sum_sq_dev(const float* x, int64_t dim, float mean) {
  const __m256 m = _mm256_set1_ps(mean);
  __m256 a0 = _mm256_setzero_ps(), a1 = a0;
  int64_t i = 0;
  for (; i + 16 <= dim; i += 16) {
    const __m256 d0 = _mm256_sub_ps(_mm256_loadu_ps(x + i), m);
    const __m256 d1 = _mm256_sub_ps(_mm256_loadu_ps(x + i + 8), m);
    a0 = _mm256_fmadd_ps(d0, d0, a0);
    a1 = _mm256_fmadd_ps(d1, d1, a1);
  }
  for (; i + 8 <= dim; i += 8) {
    const __m256 d = _mm256_sub_ps(_mm256_loadu_ps(x + i), m);
    a0 = _mm256_fmadd_ps(d, d, a0);
  }
  if (i < dim) {
    const __m256i mask = avx2::tail_mask(dim - i);
    const __m256 d =
        _mm256_and_ps(_mm256_castsi256_ps(mask), _mm256_sub_ps(_mm256_maskload_ps(x + i, mask), m));
    a1 = _mm256_fmadd_ps(d, d, a1);
  }
  return avx2::hsum(_mm256_add_ps(a0, a1));
}

// y = x * inv * (w + offset), w absent when kHasWeight is false.
template <bool kHasWeight, Dtype W>
void rms_scale_row(const float* x, int64_t dim, float inv, const void* w, float offset, float* y) {
  const __m256 vinv = _mm256_set1_ps(inv);
  const __m256 voff = _mm256_set1_ps(offset);
  int64_t i = 0;
  for (; i + 8 <= dim; i += 8) {
    __m256 v = _mm256_mul_ps(_mm256_loadu_ps(x + i), vinv);
    if constexpr (kHasWeight) v = _mm256_mul_ps(v, _mm256_add_ps(load8<W>(w, i), voff));
    _mm256_storeu_ps(y + i, v);
  }
  if (i < dim) {
    const int64_t n = dim - i;
    __m256 v = _mm256_mul_ps(avx2::load_tail_f32(x + i, n), vinv);
    if constexpr (kHasWeight) v = _mm256_mul_ps(v, _mm256_add_ps(load_tail<W>(w, i, n), voff));
    avx2::store_tail_f32(y + i, v, n);
  }
}

template <bool kHasWeight, Dtype W>
void rms_rows(const float* x,
              int64_t rows,
              int64_t dim,
              int64_t ldx,
              float* out,
              int64_t ldo,
              const RmsNormOptions& o) {
  const float offset = o.add_unit_offset ? 1.0f : 0.0f;
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * ldx;
    const float ms = sum_squares(xr, dim) / static_cast<float>(dim);
    const float inv = 1.0f / __builtin_sqrtf(ms + o.eps);
    rms_scale_row<kHasWeight, W>(xr, dim, inv, o.weight.data, offset, out + r * ldo);
  }
}

template <Dtype W, Dtype B>
void layer_norm_rows(const float* x,
                     int64_t rows,
                     int64_t dim,
                     int64_t ldx,
                     float* out,
                     int64_t ldo,
                     const LayerNormOptions& o) {
  const bool has_w = o.weight.data != nullptr, has_b = o.bias.data != nullptr;
  const __m256 one = _mm256_set1_ps(1.0f), zero = _mm256_setzero_ps();
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * ldx;
    float* yr = out + r * ldo;
    const float mean = sum(xr, dim) / static_cast<float>(dim);
    const float var = sum_sq_dev(xr, dim, mean) / static_cast<float>(dim);
    const __m256 vinv = _mm256_set1_ps(1.0f / __builtin_sqrtf(var + o.eps));
    const __m256 vmean = _mm256_set1_ps(mean);
    int64_t i = 0;
    for (; i + 8 <= dim; i += 8) {
      const __m256 w = has_w ? load8<W>(o.weight.data, i) : one;
      const __m256 b = has_b ? load8<B>(o.bias.data, i) : zero;
      const __m256 v = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(xr + i), vmean), vinv);
      _mm256_storeu_ps(yr + i, _mm256_fmadd_ps(v, w, b));
    }
    if (i < dim) {
      const int64_t n = dim - i;
      const __m256 w = has_w ? load_tail<W>(o.weight.data, i, n) : one;
      const __m256 b = has_b ? load_tail<B>(o.bias.data, i, n) : zero;
      const __m256 v = _mm256_mul_ps(_mm256_sub_ps(avx2::load_tail_f32(xr + i, n), vmean), vinv);
      avx2::store_tail_f32(yr + i, _mm256_fmadd_ps(v, w, b), n);
    }
  }
}

template <Dtype W>
void layer_norm_rows_w(const float* x,
                       int64_t rows,
                       int64_t dim,
                       int64_t ldx,
                       float* out,
                       int64_t ldo,
                       const LayerNormOptions& o) {
  switch (o.bias.data ? o.bias.dtype : Dtype::f32) {
    case Dtype::f16:
      return layer_norm_rows<W, Dtype::f16>(x, rows, dim, ldx, out, ldo, o);
    case Dtype::bf16:
      return layer_norm_rows<W, Dtype::bf16>(x, rows, dim, ldx, out, ldo, o);
    default:
      return layer_norm_rows<W, Dtype::f32>(x, rows, dim, ldx, out, ldo, o);
  }
}

}  // namespace

void rms_norm_rows_avx2(const float* x,
                        int64_t rows,
                        int64_t dim,
                        int64_t ldx,
                        float* out,
                        int64_t ldo,
                        const RmsNormOptions& o) {
  if (!o.weight.data) return rms_rows<false, Dtype::f32>(x, rows, dim, ldx, out, ldo, o);
  switch (o.weight.dtype) {
    case Dtype::f16:
      return rms_rows<true, Dtype::f16>(x, rows, dim, ldx, out, ldo, o);
    case Dtype::bf16:
      return rms_rows<true, Dtype::bf16>(x, rows, dim, ldx, out, ldo, o);
    default:
      return rms_rows<true, Dtype::f32>(x, rows, dim, ldx, out, ldo, o);
  }
}

void layer_norm_rows_avx2(const float* x,
                          int64_t rows,
                          int64_t dim,
                          int64_t ldx,
                          float* out,
                          int64_t ldo,
                          const LayerNormOptions& o) {
  switch (o.weight.data ? o.weight.dtype : Dtype::f32) {
    case Dtype::f16:
      return layer_norm_rows_w<Dtype::f16>(x, rows, dim, ldx, out, ldo, o);
    case Dtype::bf16:
      return layer_norm_rows_w<Dtype::bf16>(x, rows, dim, ldx, out, ldo, o);
    default:
      return layer_norm_rows_w<Dtype::f32>(x, rows, dim, ldx, out, ldo, o);
  }
}

}  // namespace lmx::cpu::detail
