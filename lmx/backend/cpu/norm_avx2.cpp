// AVX2 RMSNorm / LayerNorm rows: the width-generic rows of norm_rows.h on 8 lanes. See
// vec_math_avx2.h for the rules of AVX2 files.
#include "lmx/backend/cpu/norm_avx2.h"

#include "lmx/backend/cpu/vec_math_avx2.h"
// After the lane set: the generic rows.
#include "lmx/backend/cpu/norm_rows.h"

namespace lmx::cpu::detail {

const NormRowKernels kNormRowsAvx2 = {simd::rms_norm_rows<avx2::F32x8>,
                                      simd::layer_norm_rows<avx2::F32x8>};

}  // namespace lmx::cpu::detail
