// AVX-512 kernels of activations.cpp (defined in activations_avx512.cpp): those of
// activations_avx2.h on 16 lanes (the same values, bit for bit). Run only after
// cpu_features().use_avx512().
#pragma once

#include <cstdint>

#include "lmx/backend/cpu/activations_avx2.h"

namespace lmx::cpu::detail {

// ActivationKernels' entries. Functions declared here rather than a table: g++ 12 gives
// template instances reached only through a pointer variable no AVX-512 target.
void activation_avx512(Activation act, const float* x, const float* unused, float* out, int64_t n);
void activation_mul_avx512(
    Activation act, const float* gate, const float* up, float* out, int64_t n);

}  // namespace lmx::cpu::detail
