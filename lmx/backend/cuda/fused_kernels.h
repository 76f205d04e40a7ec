// Fused kernels of the decode step (one launch where the per-op path takes several).
// Plain C++17 (launch_args.h), no lmx includes.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace lmx::cuda::detail {

// One token of batch 1 at `position` (or *device_position when set): q rotated into
// q_out, k rotated into kbuf[h, position], v copied into vbuf[h, position]: RoPE of q and
// k and the KV cache append in one launch, with the rope kernel's arithmetic.
// Strides are element strides of [batch, heads, seq, dim].
struct RopeAppend {
  int64_t q_heads = 0, kv_heads = 0, head_dim = 0, v_head_dim = 0, rotary_dim = 0;
  bool traditional = false;
  const float* inv_freq = nullptr;
  float mscale = 1.0f;
  const float* q = nullptr;
  int64_t q_strides[4] = {};
  float* q_out = nullptr;
  int64_t q_out_strides[4] = {};
  const float* k = nullptr;
  int64_t k_strides[4] = {};
  const float* v = nullptr;
  int64_t v_strides[4] = {};
  void* kbuf = nullptr;  // f32, or bf16 where bf16_buffers
  int64_t kbuf_strides[4] = {};
  void* vbuf = nullptr;
  int64_t vbuf_strides[4] = {};
  bool bf16_buffers = false;
  int64_t position = 0;
  const int64_t* device_position = nullptr;
};
cudaError_t launch_rope_append(const RopeAppend& r, cudaStream_t stream);

}  // namespace lmx::cuda::detail
