// AVX-512 row kernels of softmax.cpp (defined in softmax_avx512.cpp): the rows of
// softmax_avx2.h on 16 lanes with masked row tails (the same exp, f32 sums in more lanes).
// Run only after cpu_features().use_avx512().
#pragma once

#include "lmx/backend/cpu/softmax_avx2.h"

namespace lmx::cpu::detail {

extern const SoftmaxRowKernels kSoftmaxRowsAvx512;

}  // namespace lmx::cpu::detail
