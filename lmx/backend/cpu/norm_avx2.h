// AVX2 entry points of norm.cpp (defined in norm_avx2.cpp): whole rows, one thread.
#pragma once

#include <cstdint>

#include "lmx/backend/cpu/norm.h"

namespace lmx::cpu::detail {

void rms_norm_rows_avx2(const float* x,
                        int64_t rows,
                        int64_t dim,
                        int64_t ldx,
                        float* out,
                        int64_t ldo,
                        const RmsNormOptions& options);
void layer_norm_rows_avx2(const float* x,
                          int64_t rows,
                          int64_t dim,
                          int64_t ldx,
                          float* out,
                          int64_t ldo,
                          const LayerNormOptions& options);

}  // namespace lmx::cpu::detail
