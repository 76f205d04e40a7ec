// AVX2 entry points of softmax.cpp (defined in softmax_avx2.cpp): whole rows, one thread.
#pragma once

#include <cstdint>

namespace lmx::cpu::detail {

void softmax_rows_avx2(
    const float* x, int64_t rows, int64_t dim, int64_t ldx, float* out, int64_t ldo);
void log_softmax_rows_avx2(
    const float* x, int64_t rows, int64_t dim, int64_t ldx, float* out, int64_t ldo);

}  // namespace lmx::cpu::detail
