// AVX2 flash-attention block of attention.cpp (defined in attention_avx2.cpp).
#pragma once

#include <cstdint>

#include "lmx/backend/cpu/attention.h"

namespace lmx::cpu::detail {

// Query rows of one (batch, kv head) are numbered row = i * group + g (query i, q head
// kv_head * group + g), so a block of rows shares k/v loads across the GQA group.
inline constexpr int64_t kAttentionBlockRows = 4;
inline constexpr int64_t kAttentionTileKeys = 64;

// `static`: this header is shared by AVX2 and scalar files, so no inline function
// here may have one linker-visible copy.
static constexpr int64_t round_up8(int64_t n) { return (n + 7) & ~int64_t{7}; }

// Floats of per-thread scratch the block kernel needs.
static constexpr int64_t attention_scratch_floats(const AttentionArgs& a) {
  return kAttentionBlockRows * round_up8(a.head_dim) +
         kAttentionTileKeys * (round_up8(a.head_dim) + round_up8(a.v_head_dim)) +
         (kAttentionTileKeys + 8) * kAttentionBlockRows;
}

struct AttentionBlock {
  int64_t batch = 0;
  int64_t kv_head = 0;
  int64_t row0 = 0;       // first row of the block
  int64_t rows = 0;       // 1..kAttentionBlockRows
  int64_t key_begin = 0;  // keys [key_begin, key_end) of this (possibly split) task
  int64_t key_end = 0;
};

// Online-softmax partial result of a block over its key range, before any sink and
// normalization: for each row r < block.rows, running max m[r] (-inf when
// the row saw no visible key), sum l[r] = sum_j e^(s_j - m), and
// o[r * round_up8(v_head_dim) + d] = sum_j e^(s_j - m) v_j[d].
void attention_block_avx2(const AttentionArgs& args,
                          const AttentionOptions& options,
                          const AttentionBlock& block,
                          float* scratch,
                          float* m,
                          float* l,
                          float* o);

}  // namespace lmx::cpu::detail
