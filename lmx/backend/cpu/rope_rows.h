// Width-generic rotary embedding of one head vector over a lane set V (vec_math.h),
// instantiated by rope_avx2.cpp (8 lanes) and rope_avx512.cpp (16 lanes); include only
// through those. Pairs are rotated a lane set at a time, the last partial one through masks.
#pragma once

#include <cstdint>

#include "lmx/backend/cpu/vec_math.h"

namespace lmx::cpu::simd {

// n (<= kLanes) floats at p: a whole lane set when n is kLanes (constant after inlining).
template <class V>
LMX_SIMD_TARGET static inline typename V::Reg load_part(const float* p, int64_t n) {
  return n == V::kLanes ? V::load(p) : V::load_tail(p, n);
}
template <class V>
LMX_SIMD_TARGET static inline void store_part(float* p, typename V::Reg v, int64_t n) {
  if (n == V::kLanes)
    V::store(p, v);
  else
    V::store_tail(p, v, n);
}

// Rotates pairs [i, i + n) (n <= kLanes): non-traditional pairs (k, k + half) read from x
// and written to out (which may alias x exactly: everything is read first).
template <class V>
LMX_SIMD_TARGET static inline void rope_split_pairs(const float* x,
                                                    float* out,
                                                    int64_t half,
                                                    const float* c,
                                                    const float* s,
                                                    int64_t i,
                                                    int64_t n) {
  using R = typename V::Reg;
  const R x0 = load_part<V>(x + i, n), x1 = load_part<V>(x + half + i, n);
  const R vc = load_part<V>(c + i, n), vs = load_part<V>(s + i, n);
  store_part<V>(out + i, V::fmsub(x0, vc, V::mul(x1, vs)), n);
  store_part<V>(out + half + i, V::fmadd(x1, vc, V::mul(x0, vs)), n);
}

// Rotates interleaved pairs (2k, 2k + 1) for k in [i, i + n), n <= kLanes: 2n floats in two
// lane sets; even lanes x0 c - x1 s, odd lanes x1 c + x0 s.
template <class V>
LMX_SIMD_TARGET static inline void rope_interleaved_pairs(
    const float* x, float* out, const float* c, const float* s, int64_t i, int64_t n) {
  using R = typename V::Reg;
  constexpr int64_t L = V::kLanes;
  const int64_t na = 2 * n < L ? 2 * n : L, nb = 2 * n - na;
  const R vc = load_part<V>(c + i, n), vs = load_part<V>(s + i, n);
  const R a = load_part<V>(x + 2 * i, na), b = load_part<V>(x + 2 * i + L, nb);
  const R ra = V::fmaddsub(a, V::dup_pairs_lo(vc), V::mul(V::swap_pairs(a), V::dup_pairs_lo(vs)));
  const R rb = V::fmaddsub(b, V::dup_pairs_hi(vc), V::mul(V::swap_pairs(b), V::dup_pairs_hi(vs)));
  store_part<V>(out + 2 * i, ra, na);
  if (nb > 0) store_part<V>(out + 2 * i + L, rb, nb);
}

// One head vector: `half` = rotary_dim / 2 pairs with cos/sin tables [half]; dims
// [rotary_dim, head_dim) are copied. x and out are contiguous within the head and may
// alias exactly.
template <class V>
LMX_SIMD_TARGET static void rope_head(const float* x,
                                      float* out,
                                      int64_t head_dim,
                                      int64_t half,
                                      bool traditional,
                                      const float* c,
                                      const float* s) {
  constexpr int64_t L = V::kLanes;
  int64_t i = 0;
  if (!traditional) {
    for (; i + L <= half; i += L) rope_split_pairs<V>(x, out, half, c, s, i, L);
    if (i < half) rope_split_pairs<V>(x, out, half, c, s, i, half - i);
  } else {
    for (; i + L <= half; i += L) rope_interleaved_pairs<V>(x, out, c, s, i, L);
    if (i < half) rope_interleaved_pairs<V>(x, out, c, s, i, half - i);
  }
  if (out != x) map_row<V>(x + 2 * half, out + 2 * half, head_dim - 2 * half, Copy<V>{});
}

}  // namespace lmx::cpu::simd
