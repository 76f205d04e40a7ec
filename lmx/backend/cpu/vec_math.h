// Width-generic f32 vector math (exp, log1p, tanh, sigmoid, erfc, the activations) over a
// lane set V: avx2::F32x8 (vec_math_avx2.h) or avx512::F32x16 (vec_math_avx512.h). Both
// tiers run the same operations in the same order, so a value computed here has the same
// bits on either tier (the AVX-512 2^n scaling, vscalefps, rounds p * 2^n once, as the
// AVX2 pair of exact power-of-two products does).
//
// Include only through those two headers (never from a scalar file): every function here
// is a `static inline` template, instantiated with the including tier's lanes.
//
// A lane set V provides, with R = V::Reg and M = V::Mask (a lane predicate):
//   kLanes; zero(); set1(f); load(p) / store(p, v) (unaligned);
//   load_tail(p, n) (lanes >= n are 0; n may be 0), store_tail(p, v, n),
//   load_tail_or(p, n, fill), zero_tail(v, n), blend_tail(n, v, old) (lanes < n from v);
//   load_as<D>(base, i) / load_tail_as<D>(base, i, n): f32 / f16 / bf16 widened to f32;
//   add sub mul div min max (min/max return the second operand when one is NaN),
//   fmadd(a, b, c) = a b + c, fmsub = a b - c, fnmadd = c - a b, fmaddsub (even lanes
//   a b - c, odd lanes a b + c); abs(x); or_sign(a, x) = a with x's sign bit or-ed in;
//   lt gt eq -> M (ordered, quiet); select(m, if_true, if_false);
//   round(x) (to nearest even), scale_pow2(p, n) = p * 2^n (n integral, [-150, 128]);
//   hsum(v), hmax(v); dup_pairs_lo / dup_pairs_hi (lanes 0,0,1,1,... of each half),
//   swap_pairs (lanes 1,0,3,2,...); xor_lanes<K>(v) (lane l takes lane l ^ K);
//   transpose_sum(a) (lane i = the sum of the lanes of a[i], i < kLanes).
//
// Polynomial coefficients were fitted for lmx (mpmath Chebyshev fits, rounded to f32);
// accuracies are checked against double-precision references in
// tests/backend/cpu/activations_test.cpp.
#pragma once

// LMX_SIMD_TARGET: the target attribute of the including tier (vec_math_avx2.h: none, the
// file's flags; vec_math_avx512.h: AVX-512), on every function template here and in the
// generic kernels. g++ 12 compiles template instances at the end of a file, outside an
// AVX-512 target region, and gives those that are not inlined no AVX-512 target otherwise.
#ifndef LMX_SIMD_TARGET
#error "include vec_math.h through vec_math_avx2.h or vec_math_avx512.h"
#endif

#include <cstddef>
#include <cstdint>

#include "lmx/core/dtype.h"

namespace lmx::cpu::simd {

// c[0] x^(N-1) + ... + c[N-1] by Horner's rule, one FMA a step.
template <class V, size_t N>
LMX_SIMD_TARGET static inline typename V::Reg horner(typename V::Reg x, const float (&c)[N]) {
  typename V::Reg p = V::set1(c[0]);
  for (size_t k = 1; k < N; ++k) p = V::fmadd(p, x, V::set1(c[k]));
  return p;
}

// e^x, within ~1 ulp of the correctly rounded result for x in [-87.3, 88.7] (normal
// results); smaller results are computed as (correctly scaled) subnormals or 0,
// larger ones give +inf; exp(-inf) = 0, NaN stays NaN.
// Method: x = n*ln2 + r with |r| <= ln2/2 (Cody-Waite, two-part ln2 with FMA),
// e^r = 1 + r + r^2 P(r) (degree-5 P), and 2^n applied without overflowing the exponent
// field for n in [-150, 128].
template <class V>
LMX_SIMD_TARGET static inline typename V::Reg exp(typename V::Reg x) {
  // Operand order keeps NaN: max/min return the second operand when one is NaN.
  x = V::min(V::set1(88.8f), V::max(V::set1(-104.0f), x));
  const auto n = V::round(V::mul(x, V::set1(1.44269504088896341f)));
  auto r = V::fnmadd(n, V::set1(0.693145751953125f), x);
  r = V::fnmadd(n, V::set1(1.42860682030941723e-06f), r);
  static constexpr float kP[] = {1.989098091e-04f, 1.393364160e-03f, 8.333310485e-03f,
                                 4.166646674e-02f, 1.666666716e-01f, 5.000000000e-01f};
  const auto p = V::fmadd(horner<V>(r, kP), V::mul(r, r), V::add(r, V::set1(1.0f)));
  return V::scale_pow2(p, n);
}

// 1 / (1 + e^-x), accurate to a few ulp (division, no reciprocal estimate).
template <class V>
LMX_SIMD_TARGET static inline typename V::Reg sigmoid(typename V::Reg x) {
  const auto one = V::set1(1.0f);
  return V::div(one, V::add(one, exp<V>(V::sub(V::zero(), x))));
}

// x / (1 + e^-x).
template <class V>
LMX_SIMD_TARGET static inline typename V::Reg silu(typename V::Reg x) {
  return V::div(x, V::add(V::set1(1.0f), exp<V>(V::sub(V::zero(), x))));
}

// tanh(x): odd polynomial for |x| < 0.625 (keeps relative accuracy near 0), else
// sign(x) * (1 - 2 / (e^{2|x|} + 1)), which saturates to +-1 without overflow.
template <class V>
LMX_SIMD_TARGET static inline typename V::Reg tanh(typename V::Reg x) {
  const auto ax = V::abs(x);
  const auto z = V::mul(x, x);
  static constexpr float kP[] = {-6.096714176e-03f, 2.099717967e-02f, -5.385090783e-02f,
                                 1.333276927e-01f, -3.333332837e-01f};
  const auto small = V::fmadd(V::mul(horner<V>(z, kP), z), x, x);
  const auto e = exp<V>(V::add(ax, ax));
  const auto one = V::set1(1.0f);
  const auto large = V::or_sign(V::sub(one, V::div(V::set1(2.0f), V::add(e, one))), x);
  return V::select(V::lt(ax, V::set1(0.625f)), small, large);
}

// log1p(e) for e in [0, 1] (softplus's log1p(exp(-|x|))), ~1-2 ulp.
// u = 1 + e is split as 2^k * m with m in [sqrt(1/2), sqrt(2)); log m = 2 atanh(f),
// f = (m - 1) / (m + 1); the rounding of u is undone by the factor e / (u - 1).
template <class V>
LMX_SIMD_TARGET static inline typename V::Reg log1p_unit(typename V::Reg e) {
  const auto one = V::set1(1.0f);
  const auto u = V::add(one, e);
  const auto big = V::gt(u, V::set1(1.41421356f));
  const auto m = V::select(big, V::mul(u, V::set1(0.5f)), u);
  const auto k_ln2 = V::select(big, V::set1(0.693147180559945309f), V::zero());
  const auto f = V::div(V::sub(m, one), V::add(m, one));
  const auto w = V::mul(f, f);
  static constexpr float kP[] = {2.333046794e-01f, 2.855082154e-01f, 4.000012279e-01f,
                                 6.666666865e-01f};
  // log m = 2f + f^3 P(f^2)
  const auto logm = V::fmadd(V::mul(horner<V>(w, kP), w), f, V::add(f, f));
  const auto logu = V::add(k_ln2, logm);
  const auto um1 = V::sub(u, one);
  const auto exact = V::eq(um1, V::zero());
  const auto corrected = V::mul(logu, V::div(e, V::select(exact, one, um1)));
  return V::select(exact, e, corrected);
}

// log(1 + e^x), stable: max(x, 0) + log1p(e^-|x|).
template <class V>
LMX_SIMD_TARGET static inline typename V::Reg softplus(typename V::Reg x) {
  const auto e = exp<V>(V::sub(V::zero(), V::abs(x)));
  return V::add(V::max(x, V::zero()), log1p_unit<V>(e));
}

// erfc(t) for t >= 0 with ~1e-7 relative accuracy while the result is normal.
// t < 1: 1 - t P(t^2). t >= 1: e^{-t^2} R(1/t), R fitted on 1/t in [0.09, 1] (for
// larger t, e^{-t^2} underflows to 0 anyway); t^2 is split exactly with FMA so the
// exponential does not inherit its rounding error.
template <class V>
LMX_SIMD_TARGET static inline typename V::Reg erfc_nonneg(typename V::Reg t) {
  const auto one = V::set1(1.0f);
  static constexpr float kP[] = {7.875874871e-05f,  -8.016864303e-04f, 5.189087242e-03f,
                                 -2.685421146e-02f, 1.128359437e-01f,  -3.761262596e-01f,
                                 1.128379107e+00f};
  const auto small = V::fnmadd(horner<V>(V::mul(t, t), kP), t, one);

  // Beyond t = 10.5 the result underflows to 0; clamping keeps t^2 finite.
  const auto tl = V::min(V::max(t, one), V::set1(10.5f));
  const auto s = V::max(V::div(one, tl), V::set1(0.09f));
  // v maps s in [0.09, 1] onto [-1, 1] to keep the polynomial well conditioned.
  const auto v = V::fmadd(s, V::set1(2.197802305f), V::set1(-1.197802186f));
  static constexpr float kR[] = {2.162835335e-05f,  -2.193880573e-05f, -8.027753211e-05f,
                                 2.045259171e-04f,  -2.596165577e-04f, 1.030800340e-04f,
                                 9.652880253e-04f,  -4.206322134e-03f, 9.448788129e-03f,
                                 -4.524718970e-03f, -7.726994157e-02f, 5.032030940e-01f};
  // R(s) = erfc(1/s) e^{1/s^2} / s, so erfc(t) = e^{-t^2} * s * R(s).
  const auto hi = V::mul(tl, tl);
  const auto lo = V::fmsub(tl, tl, hi);  // t^2 = hi + lo exactly
  const auto e = V::mul(exp<V>(V::sub(V::zero(), hi)), V::fnmadd(lo, one, one));  // e^{-lo}
  const auto large = V::mul(e, V::mul(s, horner<V>(v, kR)));
  return V::select(V::lt(t, one), small, large);
}

// gelu(x) = x/2 * (1 + erf(x/sqrt2)) = x/2 * erfc(-x/sqrt2), with relative accuracy
// kept for negative x (where 1 + erf cancels).
template <class V>
LMX_SIMD_TARGET static inline typename V::Reg gelu_erf(typename V::Reg x) {
  const auto c = erfc_nonneg<V>(V::abs(V::mul(x, V::set1(0.707106781186547524f))));
  const auto cdf2 = V::select(V::lt(x, V::zero()), c, V::sub(V::set1(2.0f), c));
  return V::mul(V::mul(x, V::set1(0.5f)), cdf2);
}

// gelu with the tanh approximation: x/2 (1 + tanh(u)) = x * sigmoid(2u),
// u = sqrt(2/pi) (x + 0.044715 x^3). The sigmoid form has no cancellation.
template <class V>
LMX_SIMD_TARGET static inline typename V::Reg gelu_tanh(typename V::Reg x) {
  const auto x3 = V::mul(V::mul(x, x), x);
  const auto u = V::mul(V::set1(0.797884560802865356f), V::fmadd(x3, V::set1(0.044715f), x));
  const auto e = exp<V>(V::mul(u, V::set1(-2.0f)));
  return V::div(x, V::add(V::set1(1.0f), e));
}

// Applies f to dim floats of x and stores into y (which may be x), a lane set at a time,
// the last partial one through masks: f(v, i, n) gets the lanes [i, i + n), n == kLanes
// on whole ones (callers load other arrays with load_n).
template <class V, class F>
LMX_SIMD_TARGET static inline void map_row(const float* x, float* y, int64_t dim, F f) {
  constexpr int L = V::kLanes;
  int64_t i = 0;
  for (; i + L <= dim; i += L) V::store(y + i, f(V::load(x + i), i, int64_t{L}));
  if (i < dim) V::store_tail(y + i, f(V::load_tail(x + i, dim - i), i, dim - i), dim - i);
}

// Reduces x[0..dim) into kAcc accumulators (they hide the latency of `step`) started at
// `init`: acc = step(acc, lanes), the masked last lanes merged into acc[1] only where
// they exist; returns the accumulators combined by `combine`.
template <class V, int kAcc, class Step, class Combine>
LMX_SIMD_TARGET static inline typename V::Reg reduce_row(
    const float* x, int64_t dim, typename V::Reg init, Step step, Combine combine) {
  static_assert(kAcc == 2 || kAcc == 4);
  constexpr int L = V::kLanes;
  typename V::Reg a[kAcc];
  for (int k = 0; k < kAcc; ++k) a[k] = init;
  int64_t i = 0;
  for (; i + kAcc * L <= dim; i += kAcc * L) {
    for (int k = 0; k < kAcc; ++k) a[k] = step(a[k], V::load(x + i + k * L));
  }
  for (; i + L <= dim; i += L) a[0] = step(a[0], V::load(x + i));
  if (i < dim) a[1] = V::blend_tail(dim - i, step(a[1], V::load_tail(x + i, dim - i)), a[1]);
  if constexpr (kAcc == 2) return combine(a[0], a[1]);
  return combine(combine(a[0], a[1]), combine(a[2], a[3]));
}

// Function objects for map_row and reduce_row. Not lambdas: g++ 12 gives a lambda in a
// template instantiated at the end of an AVX-512 file (outside its target region) no AVX-512
// target, and then rejects its __m512 arguments (-Wpsabi); a class template's members keep
// the target of the region they are defined in.
template <class V>
struct Add {
  LMX_SIMD_TARGET typename V::Reg operator()(typename V::Reg a, typename V::Reg b) const {
    return V::add(a, b);
  }
};
template <class V>
struct Max {
  LMX_SIMD_TARGET typename V::Reg operator()(typename V::Reg a, typename V::Reg b) const {
    return V::max(a, b);
  }
};
// map_row's f for a constant row (zeros, -inf) and for a copy.
template <class V>
struct Fill {
  typename V::Reg value;
  LMX_SIMD_TARGET typename V::Reg operator()(typename V::Reg, int64_t, int64_t) const {
    return value;
  }
};
template <class V>
struct Copy {
  LMX_SIMD_TARGET typename V::Reg operator()(typename V::Reg v, int64_t, int64_t) const {
    return v;
  }
};

// n (<= kLanes) elements of an f32 / f16 / bf16 array from index i, widened: a whole lane
// set when n is kLanes (constant after inlining), else masked.
template <class V, Dtype D>
LMX_SIMD_TARGET static inline typename V::Reg load_n(const void* base, int64_t i, int64_t n) {
  return n == V::kLanes ? V::template load_as<D>(base, i) : V::template load_tail_as<D>(base, i, n);
}

}  // namespace lmx::cpu::simd
