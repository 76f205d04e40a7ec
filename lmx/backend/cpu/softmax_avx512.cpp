// AVX-512 softmax / log-softmax rows: the width-generic rows of softmax_rows.h on 16 lanes.
#include "lmx/backend/cpu/softmax_avx512.h"

#include <immintrin.h>

#include <cstddef>
#include <cstdint>

#include "lmx/core/dtype.h"
// Last: everything below is compiled for AVX-512.
#include "lmx/backend/cpu/avx512_target.h"
#include "lmx/backend/cpu/vec_math_avx512.h"
// After the lane set: the generic kernel.
#include "lmx/backend/cpu/softmax_rows.h"

namespace lmx::cpu::detail {

const SoftmaxRowKernels kSoftmaxRowsAvx512 = {simd::softmax_rows<avx512::F32x16, false>,
                                              simd::softmax_rows<avx512::F32x16, true>};

}  // namespace lmx::cpu::detail

#include "lmx/backend/cpu/avx512_target_end.h"
