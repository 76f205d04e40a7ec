// Width-generic RMSNorm / LayerNorm rows over a lane set V (vec_math.h), instantiated by
// norm_avx2.cpp (8 lanes) and norm_avx512.cpp (16 lanes); include only through those.
// Sums are f32, in independent accumulators of V::kLanes lanes; the last partial lane set
// of a row goes through masks. Parity with HF's f32 computation is ~1e-6 relative.
#pragma once

#include <cstdint>

#include "lmx/backend/cpu/norm.h"
#include "lmx/backend/cpu/vec_math.h"

namespace lmx::cpu::simd {

// reduce_row steps: a + v^2 and a + (v - mean)^2.
template <class V>
struct AddSquare {
  LMX_SIMD_TARGET typename V::Reg operator()(typename V::Reg a, typename V::Reg v) const {
    return V::fmadd(v, v, a);
  }
};
template <class V>
struct AddSquaredDeviation {
  typename V::Reg mean;
  LMX_SIMD_TARGET typename V::Reg operator()(typename V::Reg a, typename V::Reg v) const {
    const typename V::Reg d = V::sub(v, mean);
    return V::fmadd(d, d, a);
  }
};

template <class V>
LMX_SIMD_TARGET static inline float sum_squares(const float* x, int64_t dim) {
  return V::hsum(reduce_row<V, 4>(x, dim, V::zero(), AddSquare<V>{}, Add<V>{}));
}

template <class V>
LMX_SIMD_TARGET static inline float sum(const float* x, int64_t dim) {
  return V::hsum(reduce_row<V, 4>(x, dim, V::zero(), Add<V>{}, Add<V>{}));
}

// Sum of (x - mean)^2: the two-pass variance, as torch computes it.
template <class V>
LMX_SIMD_TARGET static inline float sum_sq_dev(const float* x, int64_t dim, float mean) {
  return V::hsum(
      reduce_row<V, 2>(x, dim, V::zero(), AddSquaredDeviation<V>{V::set1(mean)}, Add<V>{}));
}

// map_row's f of RMSNorm: x * inv * (w + offset), w absent when kHasWeight is false.
template <class V, bool kHasWeight, Dtype W>
struct RmsScale {
  typename V::Reg inv, offset;
  const void* w;
  LMX_SIMD_TARGET typename V::Reg operator()(typename V::Reg v, int64_t i, int64_t n) const {
    v = V::mul(v, inv);
    if constexpr (kHasWeight) v = V::mul(v, V::add(load_n<V, W>(w, i, n), offset));
    return v;
  }
};

// map_row's f of LayerNorm: (x - mean) * inv * w + b (w = 1, b = 0 when absent).
template <class V, Dtype W, Dtype B>
struct LayerScale {
  typename V::Reg mean, inv;
  const void* w;
  const void* b;
  LMX_SIMD_TARGET typename V::Reg operator()(typename V::Reg v, int64_t i, int64_t n) const {
    const typename V::Reg wv = w ? load_n<V, W>(w, i, n) : V::set1(1.0f);
    const typename V::Reg bv = b ? load_n<V, B>(b, i, n) : V::zero();
    return V::fmadd(V::mul(V::sub(v, mean), inv), wv, bv);
  }
};

template <class V, bool kHasWeight, Dtype W>
LMX_SIMD_TARGET static void rms_rows(const float* x,
                                     int64_t rows,
                                     int64_t dim,
                                     int64_t ldx,
                                     float* out,
                                     int64_t ldo,
                                     const RmsNormOptions& o) {
  const float offset = o.add_unit_offset ? 1.0f : 0.0f;
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * ldx;
    const float ms = sum_squares<V>(xr, dim) / static_cast<float>(dim);
    const float inv = 1.0f / __builtin_sqrtf(ms + o.eps);
    map_row<V>(xr, out + r * ldo, dim,
               RmsScale<V, kHasWeight, W>{V::set1(inv), V::set1(offset), o.weight.data});
  }
}

template <class V, Dtype W, Dtype B>
LMX_SIMD_TARGET static void layer_norm_typed(const float* x,
                                             int64_t rows,
                                             int64_t dim,
                                             int64_t ldx,
                                             float* out,
                                             int64_t ldo,
                                             const LayerNormOptions& o) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * ldx;
    const float mean = sum<V>(xr, dim) / static_cast<float>(dim);
    const float var = sum_sq_dev<V>(xr, dim, mean) / static_cast<float>(dim);
    const float inv = 1.0f / __builtin_sqrtf(var + o.eps);
    map_row<V>(xr, out + r * ldo, dim,
               LayerScale<V, W, B>{V::set1(mean), V::set1(inv), o.weight.data, o.bias.data});
  }
}

template <class V>
LMX_SIMD_TARGET static void rms_norm_rows(const float* x,
                                          int64_t rows,
                                          int64_t dim,
                                          int64_t ldx,
                                          float* out,
                                          int64_t ldo,
                                          const RmsNormOptions& o) {
  if (!o.weight.data) return rms_rows<V, false, Dtype::f32>(x, rows, dim, ldx, out, ldo, o);
  switch (o.weight.dtype) {
    case Dtype::f16:
      return rms_rows<V, true, Dtype::f16>(x, rows, dim, ldx, out, ldo, o);
    case Dtype::bf16:
      return rms_rows<V, true, Dtype::bf16>(x, rows, dim, ldx, out, ldo, o);
    default:
      return rms_rows<V, true, Dtype::f32>(x, rows, dim, ldx, out, ldo, o);
  }
}

template <class V, Dtype W>
LMX_SIMD_TARGET static void layer_norm_rows_w(const float* x,
                                              int64_t rows,
                                              int64_t dim,
                                              int64_t ldx,
                                              float* out,
                                              int64_t ldo,
                                              const LayerNormOptions& o) {
  switch (o.bias.data ? o.bias.dtype : Dtype::f32) {
    case Dtype::f16:
      return layer_norm_typed<V, W, Dtype::f16>(x, rows, dim, ldx, out, ldo, o);
    case Dtype::bf16:
      return layer_norm_typed<V, W, Dtype::bf16>(x, rows, dim, ldx, out, ldo, o);
    default:
      return layer_norm_typed<V, W, Dtype::f32>(x, rows, dim, ldx, out, ldo, o);
  }
}

template <class V>
LMX_SIMD_TARGET static void layer_norm_rows(const float* x,
                                            int64_t rows,
                                            int64_t dim,
                                            int64_t ldx,
                                            float* out,
                                            int64_t ldo,
                                            const LayerNormOptions& o) {
  switch (o.weight.data ? o.weight.dtype : Dtype::f32) {
    case Dtype::f16:
      return layer_norm_rows_w<V, Dtype::f16>(x, rows, dim, ldx, out, ldo, o);
    case Dtype::bf16:
      return layer_norm_rows_w<V, Dtype::bf16>(x, rows, dim, ldx, out, ldo, o);
    default:
      return layer_norm_rows_w<V, Dtype::f32>(x, rows, dim, ldx, out, ldo, o);
  }
}

}  // namespace lmx::cpu::simd
