// AVX2 activation kernels: the width-generic kernels of activations_rows.h on 8 lanes. See
// vec_math_avx2.h for the rules of AVX2 files.
#include "lmx/backend/cpu/activations_avx2.h"

#include "lmx/backend/cpu/vec_math_avx2.h"
// After the lane set: the generic kernels.
#include "lmx/backend/cpu/activations_rows.h"

namespace lmx::cpu::detail {

const ActivationKernels kActivationsAvx2 = {simd::activation_rows<avx2::F32x8, false>,
                                            simd::activation_rows<avx2::F32x8, true>};

}  // namespace lmx::cpu::detail
