// Vector-tier head kernel of rope.cpp: its type, and the AVX2 one (defined in
// rope_avx2.cpp; rope_avx512.h has the AVX-512 one).
#pragma once

#include <cstdint>

namespace lmx::cpu::detail {

// Rotates one head vector: `half` = rotary_dim / 2 pairs with cos/sin tables [half];
// dims [rotary_dim, head_dim) are copied. x and out are contiguous within the head
// (unit stride) and may alias exactly.
using RopeHeadFn = void (*)(const float* x,
                            float* out,
                            int64_t head_dim,
                            int64_t half,
                            bool traditional,
                            const float* cos,
                            const float* sin);

// The width-generic head of rope_rows.h on 8 lanes.
extern const RopeHeadFn kRopeHeadAvx2;

}  // namespace lmx::cpu::detail
