// AVX2 flash-attention block: the width-generic block of attention_block.h on 8 lanes. See
// vec_math_avx2.h for the rules of AVX2 files.
#include "lmx/backend/cpu/attention_avx2.h"

#include "lmx/backend/cpu/vec_math_avx2.h"
// After the lane set: the generic block.
#include "lmx/backend/cpu/attention_block.h"

namespace lmx::cpu::detail {

const AttentionBlockFn kAttentionBlockAvx2 = simd_attention::attention_block<avx2::F32x8>;

}  // namespace lmx::cpu::detail
