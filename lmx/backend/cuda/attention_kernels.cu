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

// LMX_CUDA_ATTENTION_TILED=0 keeps prefill on the one-block-per-row kernel (to measure
// what the tiles save).
bool tiled_enabled() {
  static const bool enabled = [] {
    const char* env = std::getenv("LMX_CUDA_ATTENTION_TILED");
    return !env || std::string(env) != "0";
  }();
  return enabled;
}

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
    float dot = 0.0f, vv[kPerLane];
#pragma unroll
    for (int t = 0; t < kPerLane; ++t) {
      const int64_t d = lane + 32 * t;
      if (d < a.head_dim) dot += qv[t] * kr(b, kvh, j, d);
      // Read with the key: the value's load latency overlaps the key's and the reduction.
      vv[t] = d < a.v_head_dim ? vr(b, kvh, j, d) : 0.0f;
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
      if (d < a.v_head_dim) acc[t] = acc[t] * corr + p * vv[t];
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

// Prefill (several query rows): a block takes kTileRows query rows of one (batch, head)
// and walks the visible keys kTileKeys at a time, each tile of K and V loaded once into
// shared memory (as f32) for all its rows instead of once per row. A warp holds
// kWarpRows rows: lane t scores key t of the tile against each row (q rows broadcast
// from shared memory, 4 dims per load), the online softmax updates per row, and each
// lane accumulates kDimsPerLane output dims of every row from the tile's V.
constexpr int kTileRows = 32, kTileKeys = 32, kTileWarps = 4, kWarpRows = kTileRows / kTileWarps;

// Shared floats: q [rows][D], k [keys][D + 4] (the pad spreads 16-byte reads over the
// banks), v [keys][Dv], p [warps][rows][keys].
int64_t tiled_shared_floats(int64_t d, int64_t dv) {
  return kTileRows * d + kTileKeys * (d + 4) + kTileKeys * dv + kTileWarps * kWarpRows * kTileKeys;
}

template <int kDimsPerLane, typename Rows>
__device__ void attend_tiled(const Attention& a, const Rows& kr, const Rows& vr) {
  extern __shared__ float4 shared4[];
  float* shared = reinterpret_cast<float*>(shared4);
  const int D = static_cast<int>(a.head_dim), Dv = static_cast<int>(a.v_head_dim), kld = D + 4;
  float* qs = shared;
  float* ks = qs + kTileRows * D;
  float* vs = ks + kTileKeys * kld;
  float* ps = vs + kTileKeys * Dv;
  const int64_t tiles = (a.q_len + kTileRows - 1) / kTileRows;
  const int64_t i0 = (blockIdx.x % tiles) * kTileRows;
  const int64_t h = (blockIdx.x / tiles) % a.q_heads;
  const int64_t b = blockIdx.x / tiles / a.q_heads;
  const int64_t kvh = h / (a.q_heads / a.kv_heads);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const float* q = a.q + b * a.q_strides[0] + h * a.q_strides[1];
  // Shared-memory fills: warp w takes rows w, w + kTileWarps, ..., lanes the dims (no
  // per-element division).
  for (int r = warp; r < kTileRows; r += kTileWarps) {
    const int64_t i = i0 + r;
    for (int d = lane; d < D; d += 32) qs[r * D + d] = i < a.q_len ? q[i * a.q_strides[2] + d * a.q_strides[3]] : 0.0f;
  }
  // The keys any row of the tile sees.
  const int64_t i_last = min(i0 + kTileRows, a.q_len) - 1;
  int64_t j_end = a.kv_len;
  if (a.causal && a.q_offset + i_last + 1 < j_end) j_end = a.q_offset + i_last + 1;
  int64_t j_begin = 0;
  if (a.window > 0 && a.q_offset + i0 - a.window + 1 > 0) j_begin = a.q_offset + i0 - a.window + 1;

  float m[kWarpRows], l[kWarpRows], acc[kWarpRows][kDimsPerLane];
#pragma unroll
  for (int r = 0; r < kWarpRows; ++r) {
    m[r] = -CUDART_INF_F, l[r] = 0.0f;
#pragma unroll
    for (int t = 0; t < kDimsPerLane; ++t) acc[r][t] = 0.0f;
  }
  float* pw = ps + warp * kWarpRows * kTileKeys;
  const float* mask_base = a.mask ? a.mask + b * a.mask_strides[0] + h * a.mask_strides[1] : nullptr;
  for (int64_t j0 = j_begin; j0 < j_end; j0 += kTileKeys) {
    __syncthreads();  // the previous tile's k / v are no longer read
    for (int jj = warp; jj < kTileKeys; jj += kTileWarps) {
      const int64_t j = j0 + jj;
      const bool in = j < j_end;
      for (int d = lane; d < D; d += 32) ks[jj * kld + d] = in ? kr(b, kvh, j, d) : 0.0f;
      for (int d = lane; d < Dv; d += 32) vs[jj * Dv + d] = in ? vr(b, kvh, j, d) : 0.0f;
    }
    __syncthreads();
    // Scores of key j0 + lane against the warp's rows.
    float s[kWarpRows];
#pragma unroll
    for (int r = 0; r < kWarpRows; ++r) s[r] = 0.0f;
    const float4* krow = reinterpret_cast<const float4*>(ks + lane * kld);
    const float4* qrows = reinterpret_cast<const float4*>(qs + warp * kWarpRows * D);
    for (int d4 = 0; d4 < D / 4; ++d4) {
      const float4 kv = krow[d4];
#pragma unroll
      for (int r = 0; r < kWarpRows; ++r) {
        const float4 qv = qrows[r * (D / 4) + d4];
        s[r] += qv.x * kv.x + qv.y * kv.y + qv.z * kv.z + qv.w * kv.w;
      }
    }
    const int64_t j = j0 + lane;
#pragma unroll
    for (int r = 0; r < kWarpRows; ++r) {
      const int64_t i = i0 + warp * kWarpRows + r, pos = a.q_offset + i;
      bool visible = i < a.q_len && j < j_end;
      if (a.causal && j > pos) visible = false;
      if (a.window > 0 && j < pos - a.window + 1) visible = false;
      float sc = a.scale * s[r];
      if (a.softcap > 0.0f) sc = a.softcap * tanhf(sc / a.softcap);
      if (visible && mask_base) sc += mask_base[i * a.mask_strides[2] + j * a.mask_strides[3]];
      if (!visible) sc = -CUDART_INF_F;
      float mt = sc;
      for (int o = 16; o > 0; o >>= 1) mt = fmaxf(mt, __shfl_xor_sync(0xffffffffu, mt, o));
      const float m_new = fmaxf(m[r], mt);
      float p = 0.0f, corr = 1.0f;
      if (m_new != -CUDART_INF_F) {
        corr = m[r] == -CUDART_INF_F ? 0.0f : expf(m[r] - m_new);
        p = sc == -CUDART_INF_F ? 0.0f : expf(sc - m_new);
      }
      float ps_sum = p;
      for (int o = 16; o > 0; o >>= 1) ps_sum += __shfl_xor_sync(0xffffffffu, ps_sum, o);
      l[r] = l[r] * corr + ps_sum;
#pragma unroll
      for (int t = 0; t < kDimsPerLane; ++t) acc[r][t] *= corr;
      m[r] = m_new;
      pw[r * kTileKeys + lane] = p;
    }
    __syncwarp();
    const int64_t keys = min(static_cast<int64_t>(kTileKeys), j_end - j0);
    for (int64_t jj = 0; jj < keys; ++jj) {
      float v[kDimsPerLane];
#pragma unroll
      for (int t = 0; t < kDimsPerLane; ++t) {
        const int64_t d = lane + 32 * t;
        v[t] = d < Dv ? vs[jj * Dv + d] : 0.0f;
      }
#pragma unroll
      for (int r = 0; r < kWarpRows; ++r) {
        const float p = pw[r * kTileKeys + jj];
#pragma unroll
        for (int t = 0; t < kDimsPerLane; ++t) acc[r][t] += p * v[t];
      }
    }
    __syncwarp();  // pw is rewritten by the next tile
  }
#pragma unroll
  for (int r = 0; r < kWarpRows; ++r) {
    const int64_t i = i0 + warp * kWarpRows + r;
    if (i >= a.q_len) continue;
    float* out = a.out + b * a.out_strides[0] + h * a.out_strides[1] + i * a.out_strides[2];
    const float mx = fmaxf(a.sinks ? a.sinks[h] : -CUDART_INF_F, m[r]);
    if (mx == -CUDART_INF_F) {
#pragma unroll
      for (int t = 0; t < kDimsPerLane; ++t) {
        const int64_t d = lane + 32 * t;
        if (d < Dv) out[d * a.out_strides[3]] = 0.0f;
      }
      continue;
    }
    const float w = m[r] == -CUDART_INF_F ? 0.0f : expf(m[r] - mx);
    const float denom = (a.sinks ? expf(a.sinks[h] - mx) : 0.0f) + l[r] * w;
    const float inv = denom > 0.0f ? w / denom : 0.0f;
#pragma unroll
    for (int t = 0; t < kDimsPerLane; ++t) {
      const int64_t d = lane + 32 * t;
      if (d < Dv) out[d * a.out_strides[3]] = acc[r][t] * inv;
    }
  }
}

template <int kDimsPerLane>
__global__ void __launch_bounds__(kTileWarps * 32) attention_tiled_kernel(Attention a) {
  if (a.quantized) {
    attend_tiled<kDimsPerLane>(a, QuantizedRows{&a.qk, a.group_size}, QuantizedRows{&a.qv, a.group_size});
  } else {
    attend_tiled<kDimsPerLane>(a, DenseRows{a.k, a.kv_dtype, a.k_strides}, DenseRows{a.v, a.kv_dtype, a.v_strides});
  }
}

template <int kDimsPerLane>
cudaError_t launch_tiled(const Attention& a, cudaStream_t stream) {
  const size_t bytes = static_cast<size_t>(tiled_shared_floats(a.head_dim, a.v_head_dim)) * sizeof(float);
  static const cudaError_t opt_in = cudaFuncSetAttribute(
      attention_tiled_kernel<kDimsPerLane>, cudaFuncAttributeMaxDynamicSharedMemorySize,
      static_cast<int>(tiled_shared_floats(32 * kDimsPerLane, 32 * kDimsPerLane) * sizeof(float)));
  if (opt_in != cudaSuccess) return opt_in;
  const int64_t tiles = (a.q_len + kTileRows - 1) / kTileRows;
  attention_tiled_kernel<kDimsPerLane>
      <<<static_cast<unsigned>(a.batch * a.q_heads * tiles), kTileWarps * 32, bytes, stream>>>(a);
  return cudaGetLastError();
}

// The tiled kernel takes prompts of 8 rows or more (a few rows over a long cache, as in
// speculative verification, keep the split kernel's parallelism) and head dims up to 256,
// multiples of 4 (16-byte shared reads).
bool use_tiled(const Attention& a) {
  return a.q_len >= 8 && a.head_dim % 4 == 0 && a.head_dim <= 256 && a.v_head_dim <= 256 && tiled_enabled();
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
  // Enough blocks to keep every SM of an H100 / H200 busy with several, each with at
  // least kKeysPerSplit keys (fewer would cost more in the merge than they save). At 512
  // blocks of 32 keys a Llama-1B decode step's attention took 37 us per layer on an H200
  // (docs/performance.md), the warps' key loop being latency-bound.
  constexpr int64_t kTargetBlocks = 2048, kKeysPerSplit = 16, kMaxSplits = 64;
  const int64_t by_keys = (a.kv_len + kKeysPerSplit - 1) / kKeysPerSplit;
  const int64_t by_rows = (kTargetBlocks + rows - 1) / rows;
  return static_cast<int>(std::max<int64_t>(1, std::min({by_keys, by_rows, kMaxSplits})));
}

}  // namespace

int64_t attention_scratch_floats(const Attention& a) {
  if (use_tiled(a)) return 0;
  const int splits = attention_splits(a);
  return splits > 1 ? a.batch * a.q_heads * a.q_len * splits * (a.v_head_dim + 2) : 0;
}

cudaError_t launch_attention(const Attention& a, float* scratch, cudaStream_t stream) {
  const int64_t rows = a.batch * a.q_heads * a.q_len;
  if (rows <= 0 || a.v_head_dim <= 0) return cudaSuccess;
  if (use_tiled(a)) {
    const int64_t dims = std::max(a.head_dim, a.v_head_dim);
    return dims <= 64 ? launch_tiled<2>(a, stream) : dims <= 128 ? launch_tiled<4>(a, stream) : launch_tiled<8>(a, stream);
  }
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
