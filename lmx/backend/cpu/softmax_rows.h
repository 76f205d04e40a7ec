// Width-generic softmax / log-softmax rows over a lane set V (vec_math.h), instantiated by
// softmax_avx2.cpp (8 lanes) and softmax_avx512.cpp (16 lanes); include only through those.
// e^x is vec_math.h's exp (the same bits on both tiers), its sum f32 in 2 x V::kLanes
// lanes; the last partial lane set of a row goes through masks.
#pragma once

#include <cstdint>

#include "lmx/backend/cpu/vec_math.h"

namespace lmx::cpu::simd {

template <class V>
LMX_SIMD_TARGET static inline float row_max(const float* x, int64_t dim) {
  return V::hmax(reduce_row<V, 4>(x, dim, V::set1(-__builtin_inff()), Max<V>{}, Max<V>{}));
}

// Writes e^(x - m) to y (when kStore) and returns the sum.
template <class V, bool kStore>
LMX_SIMD_TARGET static inline float exp_sum(const float* x, int64_t dim, float m, float* y) {
  using R = typename V::Reg;
  constexpr int L = V::kLanes;
  const R vm = V::set1(m);
  R s0 = V::zero(), s1 = s0;
  int64_t i = 0;
  for (; i + 2 * L <= dim; i += 2 * L) {
    const R e0 = exp<V>(V::sub(V::load(x + i), vm));
    const R e1 = exp<V>(V::sub(V::load(x + i + L), vm));
    if constexpr (kStore) {
      V::store(y + i, e0);
      V::store(y + i + L, e1);
    }
    s0 = V::add(s0, e0);
    s1 = V::add(s1, e1);
  }
  for (; i + L <= dim; i += L) {
    const R e = exp<V>(V::sub(V::load(x + i), vm));
    if constexpr (kStore) V::store(y + i, e);
    s0 = V::add(s0, e);
  }
  if (i < dim) {
    const int64_t n = dim - i;
    const R e = V::zero_tail(exp<V>(V::sub(V::load_tail(x + i, n), vm)), n);
    if constexpr (kStore) V::store_tail(y + i, e, n);
    s1 = V::add(s1, e);
  }
  return V::hsum(V::add(s0, s1));
}

// map_row's f of softmax's last pass (x * inv) and of log-softmax ((x - m) - log s).
template <class V>
struct Scale {
  typename V::Reg s;
  LMX_SIMD_TARGET typename V::Reg operator()(typename V::Reg v, int64_t, int64_t) const {
    return V::mul(v, s);
  }
};
template <class V>
struct LogSoftmaxOut {
  typename V::Reg m, log_s;
  LMX_SIMD_TARGET typename V::Reg operator()(typename V::Reg v, int64_t, int64_t) const {
    return V::sub(V::sub(v, m), log_s);
  }
};

// Softmax rows, or log-softmax rows when kLog (softmax.h: an all -inf row gives zeros /
// all -inf).
template <class V, bool kLog>
LMX_SIMD_TARGET static void softmax_rows(
    const float* x, int64_t rows, int64_t dim, int64_t ldx, float* out, int64_t ldo) {
  constexpr float kNegInf = -__builtin_inff();
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * ldx;
    float* yr = out + r * ldo;
    const float m = row_max<V>(xr, dim);
    if (m == kNegInf) {
      map_row<V>(yr, yr, dim, Fill<V>{V::set1(kLog ? kNegInf : 0.0f)});
    } else if constexpr (kLog) {
      // (x - m) - log s keeps the precision of large logits (see softmax.cpp).
      const float log_s = __builtin_logf(exp_sum<V, false>(xr, dim, m, nullptr));
      map_row<V>(xr, yr, dim, LogSoftmaxOut<V>{V::set1(m), V::set1(log_s)});
    } else {
      map_row<V>(yr, yr, dim, Scale<V>{V::set1(1.0f / exp_sum<V, true>(xr, dim, m, yr))});
    }
  }
}

}  // namespace lmx::cpu::simd
