// AVX-512 activation kernels: the width-generic kernels of activations_rows.h on 16 lanes.
#include "lmx/backend/cpu/activations_avx512.h"

#include <immintrin.h>

#include <cstddef>
#include <cstdint>

#include "lmx/core/dtype.h"
// Last: everything below is compiled for AVX-512.
#include "lmx/backend/cpu/avx512_target.h"
#include "lmx/backend/cpu/vec_math_avx512.h"
// After the lane set: the generic kernel.
#include "lmx/backend/cpu/activations_rows.h"

namespace lmx::cpu::detail {

void activation_avx512(Activation act, const float* x, const float* unused, float* out, int64_t n) {
  simd::activation_rows<avx512::F32x16, false>(act, x, unused, out, n);
}

void activation_mul_avx512(Activation act, const float* g, const float* u, float* out, int64_t n) {
  simd::activation_rows<avx512::F32x16, true>(act, g, u, out, n);
}

}  // namespace lmx::cpu::detail

#include "lmx/backend/cpu/avx512_target_end.h"
