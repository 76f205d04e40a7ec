// AVX-512 flash-attention block: the width-generic block of attention_block.h on 16 lanes.
#include "lmx/backend/cpu/attention_avx512.h"

#include <immintrin.h>

#include <cstddef>
#include <cstdint>

#include "lmx/core/dtype.h"
// Last: everything below is compiled for AVX-512.
#include "lmx/backend/cpu/avx512_target.h"
#include "lmx/backend/cpu/vec_math_avx512.h"
// After the lane set: the generic kernel.
#include "lmx/backend/cpu/attention_block.h"

namespace lmx::cpu::detail {

void attention_block_avx512(const AttentionArgs& args,
                            const AttentionOptions& options,
                            const AttentionBlock& block,
                            float* scratch,
                            float* m,
                            float* l,
                            float* o) {
  simd_attention::attention_block<avx512::F32x16>(args, options, block, scratch, m, l, o);
}

}  // namespace lmx::cpu::detail

#include "lmx/backend/cpu/avx512_target_end.h"
