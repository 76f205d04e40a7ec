// AVX-512 flash-attention block of attention.cpp (defined in attention_avx512.cpp): the
// block of attention_avx2.h (same layout, same partial results) on 16 lanes, 16 / NR keys
// a step. Run only after cpu_features().use_avx512().
#pragma once

#include "lmx/backend/cpu/attention_avx2.h"

namespace lmx::cpu::detail {

// An AttentionBlockFn. A function declared here rather than a table entry: g++ 12 gives
// template instances reached only through a pointer variable no AVX-512 target.
AttentionBlockSignature attention_block_avx512;

}  // namespace lmx::cpu::detail
