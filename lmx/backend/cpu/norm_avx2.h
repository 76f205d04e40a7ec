// Vector-tier row kernels of norm.cpp: the table type both tiers fill, and the AVX2 table
// (defined in norm_avx2.cpp; norm_avx512.h has the AVX-512 one).
#pragma once

#include <cstdint>

#include "lmx/backend/cpu/norm.h"

namespace lmx::cpu::detail {

// Whole rows, one thread (x: rows of ldx floats, out: rows of ldo floats).
struct NormRowKernels {
  void (*rms)(const float* x,
              int64_t rows,
              int64_t dim,
              int64_t ldx,
              float* out,
              int64_t ldo,
              const RmsNormOptions& options);
  void (*layer)(const float* x,
                int64_t rows,
                int64_t dim,
                int64_t ldx,
                float* out,
                int64_t ldo,
                const LayerNormOptions& options);
};

// The width-generic rows of norm_rows.h on 8 lanes.
extern const NormRowKernels kNormRowsAvx2;

}  // namespace lmx::cpu::detail
