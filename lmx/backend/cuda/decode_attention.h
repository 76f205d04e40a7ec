// Decode attention: one query row per q head (q_len 1), dense K / V, an optional additive
// mask (mask[b, h, 0, j] over the kv_len keys: a left-padded batch's rows).
// One block per (batch, kv head, split of decode_tiles_per_split tiles of kDecodeKeys
// keys) reads its keys and values once for all the q heads of the kv head's GQA group and
// writes their unnormalized (max, sum, acc); the last block of a kv head to finish merges
// the splits with the sink. Few (batch, kv head) pairs (batch 1) take one tile a split, so
// that the splits fill the GPU; batches take longer splits and fewer blocks. The tiles
// per split depend on the batch and heads only, never on the key count, so a captured
// step and an eager one sum in the same order.
// The key count may be read on the device (a captured decode step, lmx/core/step_values.h):
// the grid then covers kv_capacity keys and the splits past the count only check in, so
// a launch over more splits gives the same bits as one over exactly the needed ones.
// Plain C++17 (launch_args.h), no lmx includes.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "lmx/backend/cuda/launch_args.h"

namespace lmx::cuda::detail {

constexpr int64_t kDecodeKeys = 32;       // keys per split (block)
constexpr int64_t kDecodeMaxGroup = 16;   // q heads per kv head
constexpr int64_t kDecodeMaxHeadDim = 256;
constexpr int kDecodeMaxTilesPerSplit = 2;  // measured on an H100: 1, 2, 4, 16 -> b32 6750, 7017, 6606, 5905 tok/s

// Tiles of kDecodeKeys keys per split: 1 below 32 (batch, kv head) pairs, else
// kDecodeMaxTilesPerSplit.
int decode_tiles_per_split(const Attention& a);

// Whether the decode kernel takes `a` (else the general attention kernel runs).
bool decode_attention_supported(const Attention& a);
// Floats of scratch and unsigned counters a launch over `keys` key slots needs (keys =
// kv_capacity when the count is read on the device, else kv_len).
int64_t decode_attention_scratch_floats(const Attention& a, int64_t keys);
int64_t decode_attention_counters(const Attention& a);
// `counters` must be zero before the first launch; every launch leaves them zero.
// device_position: null, or the query's position (kv_len = *device_position + 1,
// q_offset = *device_position).
cudaError_t launch_decode_attention(const Attention& a, const int64_t* device_position, int64_t keys, float* scratch,
                                    unsigned* counters, cudaStream_t stream);

// dst[b, h, *position + s, d] = src[b, h, s, d] (f32).
struct PositionedWrite {
  int64_t batch = 1, heads = 1, seq = 1, dim = 0;
  const float* src = nullptr;
  int64_t src_strides[4] = {};
  void* dst = nullptr;  // f32, or bf16 where bf16_dst
  bool bf16_dst = false;
  int64_t dst_strides[4] = {};
  const int64_t* position = nullptr;
};
cudaError_t launch_write_at_position(const PositionedWrite& w, cudaStream_t stream);

}  // namespace lmx::cuda::detail
