// AVX-512 RMSNorm / LayerNorm rows: the width-generic rows of norm_rows.h on 16 lanes.
#include "lmx/backend/cpu/norm_avx512.h"

#include <immintrin.h>

#include <cstddef>
#include <cstdint>

#include "lmx/core/dtype.h"
// Last: everything below is compiled for AVX-512.
#include "lmx/backend/cpu/avx512_target.h"
#include "lmx/backend/cpu/vec_math_avx512.h"
// After the lane set: the generic kernel.
#include "lmx/backend/cpu/norm_rows.h"

namespace lmx::cpu::detail {

const NormRowKernels kNormRowsAvx512 = {simd::rms_norm_rows<avx512::F32x16>,
                                        simd::layer_norm_rows<avx512::F32x16>};

}  // namespace lmx::cpu::detail

#include "lmx/backend/cpu/avx512_target_end.h"
