// AVX2 entry points of activations.cpp (defined in activations_avx2.cpp).
#pragma once

#include <cstdint>

#include "lmx/backend/cpu/activations.h"

namespace lmx::cpu::detail {

// Processes the largest multiple of 8 of n and returns how many elements it did.
int64_t activation_avx2(Activation act, const float* x, float* out, int64_t n);
int64_t activation_mul_avx2(
    Activation act, const float* gate, const float* up, float* out, int64_t n);

}  // namespace lmx::cpu::detail
