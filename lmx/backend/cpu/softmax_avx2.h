// Vector-tier row kernels of softmax.cpp: the table type both tiers fill, and the AVX2
// table (defined in softmax_avx2.cpp; softmax_avx512.h has the AVX-512 one).
#pragma once

#include <cstdint>

namespace lmx::cpu::detail {

// Whole rows, one thread (x: rows of ldx floats, out: rows of ldo floats).
using SoftmaxRowsFn = void (*)(const float*, int64_t, int64_t, int64_t, float*, int64_t);
struct SoftmaxRowKernels {
  SoftmaxRowsFn softmax;
  SoftmaxRowsFn log_softmax;
};

// The width-generic rows of softmax_rows.h on 8 lanes.
extern const SoftmaxRowKernels kSoftmaxRowsAvx2;

}  // namespace lmx::cpu::detail
