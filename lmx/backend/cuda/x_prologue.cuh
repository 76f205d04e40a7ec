// The decode matvecs' input prologue (XPrologue, kernels::InputPrologue): the op before a
// decode step's linears (the RMSNorm with its residual add, the gated activation) computed
// by each block of the linears' own kernel as it reads x, instead of by a launch of its own.
// The values are the norm kernel's and the activation kernel's formulas (the norm's sum of
// squares in another order: not their bits).
#pragma once

#include "lmx/backend/cuda/activation.cuh"
#include "lmx/backend/cuda/device_values.cuh"
#include "lmx/backend/cuda/launch_args.h"

namespace lmx::cuda::detail {

// Sum over the block (every thread gets it); red: >= 32 floats of shared memory.
__device__ __forceinline__ float prologue_block_sum(float v, float* red) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  const int warp = static_cast<int>(threadIdx.x) / 32, lane = static_cast<int>(threadIdx.x) % 32;
  __syncthreads();  // red may still be read by a previous sum
  if (lane == 0) red[warp] = v;
  __syncthreads();
  v = lane < static_cast<int>(blockDim.x) / 32 ? red[lane] : 0.0f;
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

__device__ __forceinline__ float4 load4(const float* p, int64_t i) { return __ldg(reinterpret_cast<const float4*>(p) + i); }

// The RMSNorm's scale 1 / sqrt(mean(v^2) + eps) of v = x + residual (x where p.residual is
// null) over k values (k % 4 == 0), every thread of the block taking part; the first block
// writes v to p.sum.
__device__ __forceinline__ float prologue_norm_scale(const float* x, int64_t k, const XPrologue& p, float* red) {
  float ss = 0.0f;
  for (int64_t i = threadIdx.x; i < k / 4; i += blockDim.x) {
    float4 v = load4(x, i);
    if (p.residual) {
      const float4 r = load4(p.residual, i);
      v.x += r.x, v.y += r.y, v.z += r.z, v.w += r.w;
      if (blockIdx.x == 0) reinterpret_cast<float4*>(p.sum)[i] = v;
    }
    ss += (v.x * v.x + v.y * v.y) + (v.z * v.z + v.w * v.w);
  }
  ss = prologue_block_sum(ss, red);
  return 1.0f / sqrtf(ss / static_cast<float>(k) + p.eps);
}

// x's values i .. i + 7 (i % 8 == 0) through the prologue: kind 1 act(x) * up, kind 2
// (x [+ residual]) * scale * w (scale from prologue_norm_scale), kind 0 x.
__device__ __forceinline__ void prologue_values(const float* x, int64_t i, const XPrologue& p, float scale,
                                                float (&v)[8]) {
  const float4 a = load4(x, i / 4), b = load4(x, i / 4 + 1);
  v[0] = a.x, v[1] = a.y, v[2] = a.z, v[3] = a.w, v[4] = b.x, v[5] = b.y, v[6] = b.z, v[7] = b.w;
  if (p.kind == 1) {
    const float4 c = load4(p.up, i / 4), d = load4(p.up, i / 4 + 1);
    const float u[8] = {c.x, c.y, c.z, c.w, d.x, d.y, d.z, d.w};
#pragma unroll
    for (int e = 0; e < 8; ++e) v[e] = activation(p.act, v[e]) * u[e];
  } else if (p.kind == 2) {
    if (p.residual) {
      const float4 c = load4(p.residual, i / 4), d = load4(p.residual, i / 4 + 1);
      const float r[8] = {c.x, c.y, c.z, c.w, d.x, d.y, d.z, d.w};
#pragma unroll
      for (int e = 0; e < 8; ++e) v[e] = v[e] + r[e];
    }
#pragma unroll
    for (int e = 0; e < 8; ++e) {
      const float w = p.w ? load_float(p.w, p.w_dtype, i + e) + (p.unit_offset ? 1.0f : 0.0f) : 1.0f;
      v[e] = v[e] * scale * w;
    }
  }
}

// The whole x (k values, k % 8 == 0) through the prologue into xs (shared, f32), every thread
// of the block taking part; synced on return. red: >= 32 floats of shared memory.
__device__ __forceinline__ void prologue_to_shared(const float* x, int64_t k, const XPrologue& p, float* xs,
                                                   float* red) {
  const float scale = p.kind == 2 ? prologue_norm_scale(x, k, p, red) : 1.0f;
  for (int64_t c = threadIdx.x; c < k / 8; c += blockDim.x) {
    float v[8];
    prologue_values(x, 8 * c, p, scale, v);
    reinterpret_cast<float4*>(xs)[2 * c] = make_float4(v[0], v[1], v[2], v[3]);
    reinterpret_cast<float4*>(xs)[2 * c + 1] = make_float4(v[4], v[5], v[6], v[7]);
  }
  __syncthreads();
}

}  // namespace lmx::cuda::detail
