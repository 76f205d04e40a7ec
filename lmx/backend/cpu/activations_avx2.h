// Vector-tier kernels of activations.cpp: the table type both tiers fill, and the AVX2
// table (defined in activations_avx2.cpp; activations_avx512.h has the AVX-512 one). Each
// does all n elements, the last partial lane set through masks.
#pragma once

#include <cstdint>

#include "lmx/backend/cpu/activations.h"

namespace lmx::cpu::detail {

struct ActivationKernels {
  // out[i] = act(x[i]) for i < n.
  void (*act)(Activation act, const float* x, const float* unused, float* out, int64_t n);
  // out[i] = act(gate[i]) * up[i].
  void (*act_mul)(Activation act, const float* gate, const float* up, float* out, int64_t n);
};

// The width-generic kernels of activations_rows.h on 8 lanes.
extern const ActivationKernels kActivationsAvx2;

}  // namespace lmx::cpu::detail
