// AVX2 rotary embedding of one head vector: the width-generic head of rope_rows.h on 8
// lanes. See vec_math_avx2.h for the rules of AVX2 files.
#include "lmx/backend/cpu/rope_avx2.h"

#include "lmx/backend/cpu/vec_math_avx2.h"
// After the lane set: the generic head.
#include "lmx/backend/cpu/rope_rows.h"

namespace lmx::cpu::detail {

const RopeHeadFn kRopeHeadAvx2 = simd::rope_head<avx2::F32x8>;

}  // namespace lmx::cpu::detail
