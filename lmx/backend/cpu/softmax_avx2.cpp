// AVX2 softmax / log-softmax rows: the width-generic rows of softmax_rows.h on 8 lanes. See
// vec_math_avx2.h for the rules of AVX2 files.
#include "lmx/backend/cpu/softmax_avx2.h"

#include "lmx/backend/cpu/vec_math_avx2.h"
// After the lane set: the generic rows.
#include "lmx/backend/cpu/softmax_rows.h"

namespace lmx::cpu::detail {

const SoftmaxRowKernels kSoftmaxRowsAvx2 = {simd::softmax_rows<avx2::F32x8, false>,
                                            simd::softmax_rows<avx2::F32x8, true>};

}  // namespace lmx::cpu::detail
