// AVX2 entry point of rope.cpp (defined in rope_avx2.cpp).
#pragma once

#include <cstdint>

namespace lmx::cpu::detail {

// Rotates one head vector: `half` = rotary_dim / 2 pairs with cos/sin tables [half];
// dims [rotary_dim, head_dim) are copied. x and out are contiguous within the head
// (unit stride) and may alias exactly.
void rope_head_avx2(const float* x,
                    float* out,
                    int64_t head_dim,
                    int64_t half,
                    bool traditional,
                    const float* cos,
                    const float* sin);

}  // namespace lmx::cpu::detail
