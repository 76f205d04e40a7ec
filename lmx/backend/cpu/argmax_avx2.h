// AVX2 entry point of argmax.cpp (defined in argmax_avx2.cpp).
#pragma once

#include <cstdint>

namespace lmx::cpu::detail {

int64_t argmax_avx2(const float* x, int64_t n);

}  // namespace lmx::cpu::detail
