// Attention: one block per query row (batch, head, i), kWarps warps that each run an
// online softmax over every kWarps-th visible key (a lane holds head_dim / 32 of q and
// of the output accumulator; a key's score is a warp reduction), then merge the warps'
// (max, sum, acc) with the sink as lmx/backend/cpu/attention.cpp's finish_row does. A
// row that sees no key gets zeros. Keys outside the causal / window range are skipped;
// -inf scores (the additive mask) add nothing.
#include <math_constants.h>

#include "lmx/backend/cuda/attention_kernels.h"
#include "lmx/backend/cuda/device_values.cuh"

namespace lmx::cuda::detail {
namespace {

constexpr int kWarps = 4;
constexpr int kPerLane = kMaxAttentionHeadDim / 32;

struct DenseRows {
  const void* data;
  int dtype;
  const int64_t* strides;
  __device__ float operator()(int64_t b, int64_t h, int64_t j, int64_t d) const {
    return load_float(data, dtype, b * strides[0] + h * strides[1] + j * strides[2] + d * strides[3]);
  }
};

struct QuantizedRows {
  const QuantRows* rows;
  int group;
  __device__ float operator()(int64_t b, int64_t h, int64_t j, int64_t d) const {
    const QuantRows& r = *rows;
    const uint32_t* w = r.w + b * r.w_strides[0] + h * r.w_strides[1] + j * r.w_strides[2];
    const int64_t s = b * r.s_strides[0] + h * r.s_strides[1] + j * r.s_strides[2] + d / group;
    return affine(r.scales[s], mlx_q(w, r.bits, d), r.biases[s]);
  }
};

template <typename Rows>
__device__ void attend(const Attention& a, const Rows& kr, const Rows& vr) {
  __shared__ float part_m[kWarps], part_l[kWarps];
  __shared__ float part_acc[kWarps][kMaxAttentionHeadDim];
  const int64_t i = blockIdx.x % a.q_len;
  const int64_t h = (blockIdx.x / a.q_len) % a.q_heads;
  const int64_t b = blockIdx.x / a.q_len / a.q_heads;
  const int64_t kvh = h / (a.q_heads / a.kv_heads);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const float* q = a.q + b * a.q_strides[0] + h * a.q_strides[1] + i * a.q_strides[2];
  float qv[kPerLane], acc[kPerLane];
#pragma unroll
  for (int t = 0; t < kPerLane; ++t) {
    const int64_t d = lane + 32 * t;
    qv[t] = d < a.head_dim ? q[d * a.q_strides[3]] : 0.0f;
    acc[t] = 0.0f;
  }
  const int64_t pos = a.q_offset + i;
  int64_t j_end = a.kv_len;
  if (a.causal && pos + 1 < j_end) j_end = pos + 1;
  int64_t j_begin = 0;
  if (a.window > 0 && pos - a.window + 1 > 0) j_begin = pos - a.window + 1;
  const float* mask = a.mask ? a.mask + b * a.mask_strides[0] + h * a.mask_strides[1] + i * a.mask_strides[2]
                             : nullptr;
  float m = -CUDART_INF_F, l = 0.0f;
  for (int64_t j = j_begin + warp; j < j_end; j += kWarps) {
    float dot = 0.0f;
#pragma unroll
    for (int t = 0; t < kPerLane; ++t) {
      const int64_t d = lane + 32 * t;
      if (d < a.head_dim) dot += qv[t] * kr(b, kvh, j, d);
    }
    for (int o = 16; o > 0; o >>= 1) dot += __shfl_xor_sync(0xffffffffu, dot, o);
    float s = a.scale * dot;
    if (a.softcap > 0.0f) s = a.softcap * tanhf(s / a.softcap);
    if (mask) s += mask[j * a.mask_strides[3]];
    if (s == -CUDART_INF_F) continue;
    const float m_new = fmaxf(m, s);
    const float corr = m == -CUDART_INF_F ? 0.0f : expf(m - m_new);
    const float p = expf(s - m_new);
    l = l * corr + p;
#pragma unroll
    for (int t = 0; t < kPerLane; ++t) {
      const int64_t d = lane + 32 * t;
      if (d < a.v_head_dim) acc[t] = acc[t] * corr + p * vr(b, kvh, j, d);
    }
    m = m_new;
  }
  if (lane == 0) part_m[warp] = m, part_l[warp] = l;
#pragma unroll
  for (int t = 0; t < kPerLane; ++t) {
    const int64_t d = lane + 32 * t;
    if (d < a.v_head_dim) part_acc[warp][d] = acc[t];
  }
  __syncthreads();
  float mx = a.sinks ? a.sinks[h] : -CUDART_INF_F;
  for (int w = 0; w < kWarps; ++w) mx = fmaxf(mx, part_m[w]);
  float* out = a.out + b * a.out_strides[0] + h * a.out_strides[1] + i * a.out_strides[2];
  if (mx == -CUDART_INF_F) {
    for (int64_t d = threadIdx.x; d < a.v_head_dim; d += blockDim.x) out[d * a.out_strides[3]] = 0.0f;
    return;
  }
  float denom = a.sinks ? expf(a.sinks[h] - mx) : 0.0f;
  float wgt[kWarps];
  for (int w = 0; w < kWarps; ++w) {
    wgt[w] = part_m[w] == -CUDART_INF_F ? 0.0f : expf(part_m[w] - mx);
    denom += part_l[w] * wgt[w];
  }
  const float inv = denom > 0.0f ? 1.0f / denom : 0.0f;
  for (int64_t d = threadIdx.x; d < a.v_head_dim; d += blockDim.x) {
    float o = 0.0f;
    for (int w = 0; w < kWarps; ++w)
      if (wgt[w] != 0.0f) o += part_acc[w][d] * wgt[w];
    out[d * a.out_strides[3]] = o * inv;
  }
}

__global__ void attention_kernel(Attention a) {
  if (a.quantized) {
    attend(a, QuantizedRows{&a.qk, a.group_size}, QuantizedRows{&a.qv, a.group_size});
  } else {
    attend(a, DenseRows{a.k, a.kv_dtype, a.k_strides}, DenseRows{a.v, a.kv_dtype, a.v_strides});
  }
}

}  // namespace

cudaError_t launch_attention(const Attention& a, cudaStream_t stream) {
  const int64_t rows = a.batch * a.q_heads * a.q_len;
  if (rows <= 0 || a.v_head_dim <= 0) return cudaSuccess;
  attention_kernel<<<static_cast<unsigned>(rows), kWarps * 32, 0, stream>>>(a);
  return cudaGetLastError();
}

}  // namespace lmx::cuda::detail
