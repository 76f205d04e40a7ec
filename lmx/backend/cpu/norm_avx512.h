// AVX-512 row kernels of norm.cpp (defined in norm_avx512.cpp): the rows of norm_avx2.h on
// 16 lanes with masked row tails (the same f32 sums, in more lanes). Run only after
// cpu_features().use_avx512().
#pragma once

#include "lmx/backend/cpu/norm_avx2.h"

namespace lmx::cpu::detail {

extern const NormRowKernels kNormRowsAvx512;

}  // namespace lmx::cpu::detail
