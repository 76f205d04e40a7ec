// Width-generic activation kernels over a lane set V (vec_math.h), instantiated by
// activations_avx2.cpp (8 lanes) and activations_avx512.cpp (16 lanes); include only
// through those. Every element goes through the same lane-wise code, the last partial lane
// set through masks, so an element's value never depends on where it lies in the array (and
// the two tiers give the same bits: vec_math.h).
#pragma once

#include <cstdint>

#include "lmx/backend/cpu/activations.h"
#include "lmx/backend/cpu/vec_math.h"

namespace lmx::cpu::simd {

// map_row's f: act(x) (times up[i] when kMul).
template <class V, Activation A, bool kMul>
struct Act {
  const float* up;
  LMX_SIMD_TARGET static typename V::Reg act(typename V::Reg v) {
    if constexpr (A == Activation::silu)
      return silu<V>(v);
    else if constexpr (A == Activation::gelu)
      return gelu_erf<V>(v);
    else if constexpr (A == Activation::gelu_tanh)
      return gelu_tanh<V>(v);
    else if constexpr (A == Activation::exp)
      return exp<V>(v);
    else if constexpr (A == Activation::tanh)
      return tanh<V>(v);
    else if constexpr (A == Activation::sigmoid)
      return sigmoid<V>(v);
    else
      return softplus<V>(v);
  }
  LMX_SIMD_TARGET typename V::Reg operator()(typename V::Reg v, int64_t i, int64_t n) const {
    if constexpr (kMul)
      return V::mul(act(v), load_n<V, Dtype::f32>(up, i, n));
    else
      return act(v);
  }
};

// out[i] = act(x[i]) (times up[i] when kMul) for i < n; out may equal x or up.
template <class V, bool kMul>
LMX_SIMD_TARGET static void activation_rows(
    Activation act, const float* x, const float* up, float* out, int64_t n) {
  switch (act) {
    case Activation::silu:
      return map_row<V>(x, out, n, Act<V, Activation::silu, kMul>{up});
    case Activation::gelu:
      return map_row<V>(x, out, n, Act<V, Activation::gelu, kMul>{up});
    case Activation::gelu_tanh:
      return map_row<V>(x, out, n, Act<V, Activation::gelu_tanh, kMul>{up});
    case Activation::exp:
      return map_row<V>(x, out, n, Act<V, Activation::exp, kMul>{up});
    case Activation::tanh:
      return map_row<V>(x, out, n, Act<V, Activation::tanh, kMul>{up});
    case Activation::sigmoid:
      return map_row<V>(x, out, n, Act<V, Activation::sigmoid, kMul>{up});
    case Activation::softplus:
      return map_row<V>(x, out, n, Act<V, Activation::softplus, kMul>{up});
  }
}

}  // namespace lmx::cpu::simd
