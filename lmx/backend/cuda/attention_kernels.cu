// Attention: one block per query row (batch, head, i), kWarps warps that each run an
// online softmax over every kWarps-th visible key (a lane holds head_dim / 32 of q and
// of the output accumulator; a key's score is a warp reduction), then merge the warps'
// (max, sum, acc) with the sink as lmx/backend/cpu/attention.cpp's finish_row does. A
// row that sees no key gets zeros. Keys outside the causal / window range are skipped;
// -inf scores (the additive mask) add nothing.
//
// Rows with long key ranges and few rows (decode: one query row per head) split their
// keys across gridDim.y blocks (flash-decoding): each block writes its unnormalized
// (max, sum, acc) to a scratch row, and a second kernel merges the splits with the sink.
#include <math_constants.h>

#include <algorithm>
#include <cstdlib>
#include <string>

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
__device__ void attend(const Attention& a, const Rows& kr, const Rows& vr, float* split_out) {
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
  if (split_out) {  // this block's share of the keys
    const int64_t chunk = (a.kv_len + gridDim.y - 1) / gridDim.y;
    j_begin = max(j_begin, static_cast<int64_t>(blockIdx.y) * chunk);
    j_end = min(j_end, static_cast<int64_t>(blockIdx.y + 1) * chunk);
  }
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
  if (split_out) {  // [row, split]: max, sum, acc[v_head_dim], without the sink
    float* part = split_out +
                  (static_cast<int64_t>(blockIdx.x) * gridDim.y + blockIdx.y) * (a.v_head_dim + 2);
    float mx = -CUDART_INF_F;
    for (int w = 0; w < kWarps; ++w) mx = fmaxf(mx, part_m[w]);
    float wgt[kWarps], sum = 0.0f;
    for (int w = 0; w < kWarps; ++w) {
      wgt[w] = part_m[w] == -CUDART_INF_F ? 0.0f : expf(part_m[w] - mx);
      sum += part_l[w] * wgt[w];
    }
    if (threadIdx.x == 0) part[0] = mx, part[1] = sum;
    for (int64_t d = threadIdx.x; d < a.v_head_dim; d += blockDim.x) {
      float o = 0.0f;
      for (int w = 0; w < kWarps; ++w)
        if (wgt[w] != 0.0f) o += part_acc[w][d] * wgt[w];
      part[2 + d] = o;
    }
    return;
  }
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

__global__ void attention_kernel(Attention a, float* split_out) {
  if (a.quantized) {
    attend(a, QuantizedRows{&a.qk, a.group_size}, QuantizedRows{&a.qv, a.group_size}, split_out);
  } else {
    attend(a, DenseRows{a.k, a.kv_dtype, a.k_strides}, DenseRows{a.v, a.kv_dtype, a.v_strides},
           split_out);
  }
}

// One block per query row: merges the rows' splits as attend() merges its warps.
__global__ void merge_splits_kernel(Attention a, const float* split_out, int splits) {
  const int64_t i = blockIdx.x % a.q_len;
  const int64_t h = (blockIdx.x / a.q_len) % a.q_heads;
  const int64_t b = blockIdx.x / a.q_len / a.q_heads;
  const int64_t width = a.v_head_dim + 2;
  const float* parts = split_out + static_cast<int64_t>(blockIdx.x) * splits * width;
  float mx = a.sinks ? a.sinks[h] : -CUDART_INF_F;
  for (int s = 0; s < splits; ++s) mx = fmaxf(mx, parts[s * width]);
  float* out = a.out + b * a.out_strides[0] + h * a.out_strides[1] + i * a.out_strides[2];
  if (mx == -CUDART_INF_F) {
    for (int64_t d = threadIdx.x; d < a.v_head_dim; d += blockDim.x)
      out[d * a.out_strides[3]] = 0.0f;
    return;
  }
  float denom = a.sinks ? expf(a.sinks[h] - mx) : 0.0f;
  for (int s = 0; s < splits; ++s) {
    const float m = parts[s * width];
    if (m != -CUDART_INF_F) denom += parts[s * width + 1] * expf(m - mx);
  }
  const float inv = denom > 0.0f ? 1.0f / denom : 0.0f;
  for (int64_t d = threadIdx.x; d < a.v_head_dim; d += blockDim.x) {
    float o = 0.0f;
    for (int s = 0; s < splits; ++s) {
      const float m = parts[s * width];
      if (m != -CUDART_INF_F) o += parts[s * width + 2 + d] * expf(m - mx);
    }
    out[d * a.out_strides[3]] = o * inv;
  }
}

// LMX_CUDA_ATTENTION_SPLITS=0 keeps every row in one block (to measure what the split
// saves).
bool splits_enabled() {
  static const bool enabled = [] {
    const char* env = std::getenv("LMX_CUDA_ATTENTION_SPLITS");
    return !env || std::string(env) != "0";
  }();
  return enabled;
}

int attention_splits(const Attention& a) {
  const int64_t rows = a.batch * a.q_heads * a.q_len;
  if (rows <= 0 || !splits_enabled()) return 1;
  // Enough blocks to fill the GPU (~4 per SM of an H100 / H200), each with at least
  // kKeysPerSplit keys (fewer would cost more in the merge than they save).
  constexpr int64_t kTargetBlocks = 512, kKeysPerSplit = 32, kMaxSplits = 64;
  const int64_t by_keys = (a.kv_len + kKeysPerSplit - 1) / kKeysPerSplit;
  const int64_t by_rows = (kTargetBlocks + rows - 1) / rows;
  return static_cast<int>(std::max<int64_t>(1, std::min({by_keys, by_rows, kMaxSplits})));
}

}  // namespace

int64_t attention_scratch_floats(const Attention& a) {
  const int splits = attention_splits(a);
  return splits > 1 ? a.batch * a.q_heads * a.q_len * splits * (a.v_head_dim + 2) : 0;
}

cudaError_t launch_attention(const Attention& a, float* scratch, cudaStream_t stream) {
  const int64_t rows = a.batch * a.q_heads * a.q_len;
  if (rows <= 0 || a.v_head_dim <= 0) return cudaSuccess;
  const int splits = attention_splits(a);
  if (splits == 1) {
    attention_kernel<<<static_cast<unsigned>(rows), kWarps * 32, 0, stream>>>(a, nullptr);
    return cudaGetLastError();
  }
  const dim3 grid(static_cast<unsigned>(rows), static_cast<unsigned>(splits));
  attention_kernel<<<grid, kWarps * 32, 0, stream>>>(a, scratch);
  merge_splits_kernel<<<static_cast<unsigned>(rows), 128, 0, stream>>>(a, scratch, splits);
  return cudaGetLastError();
}

}  // namespace lmx::cuda::detail
