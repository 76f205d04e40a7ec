// AVX-512 rotary embedding of one head vector: the width-generic head of rope_rows.h on 16
// lanes.
#include "lmx/backend/cpu/rope_avx512.h"

#include <immintrin.h>

#include <cstddef>
#include <cstdint>

#include "lmx/core/dtype.h"
// Last: everything below is compiled for AVX-512.
#include "lmx/backend/cpu/avx512_target.h"
#include "lmx/backend/cpu/vec_math_avx512.h"
// After the lane set: the generic kernel.
#include "lmx/backend/cpu/rope_rows.h"

namespace lmx::cpu::detail {

const RopeHeadFn kRopeHeadAvx512 = simd::rope_head<avx512::F32x16>;

}  // namespace lmx::cpu::detail

#include "lmx/backend/cpu/avx512_target_end.h"
