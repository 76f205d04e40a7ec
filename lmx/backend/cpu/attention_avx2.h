// AVX2 flash-attention block of attention.cpp (defined in attention_avx2.cpp), and the
// layout it shares with the AVX-512 block (attention_avx512.h).
#pragma once

#include <cstdint>

#include "lmx/backend/cpu/attention.h"

namespace lmx::cpu::detail {

// Query rows of one (batch, kv head) are numbered row = i * group + g (query i, q head
// kv_head * group + g), so a block of rows shares k/v loads across the GQA group.
inline constexpr int64_t kAttentionBlockRows = 4;
inline constexpr int64_t kAttentionTileKeys = 64;

// The widest tier's lanes (AVX-512: 16 f32): scratch and partial rows are padded to them.
inline constexpr int64_t kAttentionMaxLanes = 16;

// `static`: this header is shared by AVX2, AVX-512 and scalar files, so no inline function
// here may have one linker-visible copy.
// Floats of a padded row of n elements (a whole number of lane sets on every tier).
static constexpr int64_t attention_row_floats(int64_t n) {
  return (n + kAttentionMaxLanes - 1) / kAttentionMaxLanes * kAttentionMaxLanes;
}

// Floats of per-thread scratch the block kernels need.
static constexpr int64_t attention_scratch_floats(const AttentionArgs& a) {
  return kAttentionBlockRows * attention_row_floats(a.head_dim) +
         kAttentionTileKeys * (attention_row_floats(a.head_dim) + attention_row_floats(a.v_head_dim)) +
         (kAttentionTileKeys + kAttentionMaxLanes) * kAttentionBlockRows;
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
// o[r * attention_row_floats(v_head_dim) + d] = sum_j e^(s_j - m) v_j[d].
using AttentionBlockSignature = void(const AttentionArgs& args,
                                     const AttentionOptions& options,
                                     const AttentionBlock& block,
                                     float* scratch,
                                     float* m,
                                     float* l,
                                     float* o);
using AttentionBlockFn = AttentionBlockSignature*;

// The width-generic block of attention_block.h on 8 lanes.
extern const AttentionBlockFn kAttentionBlockAvx2;

}  // namespace lmx::cpu::detail
