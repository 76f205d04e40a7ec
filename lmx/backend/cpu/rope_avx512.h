// AVX-512 head kernel of rope.cpp (defined in rope_avx512.cpp): the head of rope_avx2.h on
// 16 lanes, the last pairs of a head through masks. Run only after
// cpu_features().use_avx512().
#pragma once

#include "lmx/backend/cpu/rope_avx2.h"

namespace lmx::cpu::detail {

extern const RopeHeadFn kRopeHeadAvx512;

}  // namespace lmx::cpu::detail
