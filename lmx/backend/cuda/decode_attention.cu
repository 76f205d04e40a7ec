// Decode attention (decode_attention.h): block (kv head, split, batch) of kThreads threads;
// a split is decode_tiles_per_split tiles of kDecodeKeys keys, walked with a running
// (online) softmax. Per tile: 1. the group's q rows and the tile's K and V to shared memory, each thread with
// all its loads in flight at once (a block's time is a few memory latencies, not one per
// key or dim as when the loops read global memory); 2. scores: 4 threads per key, each a
// quarter of the dims, summed by two shuffles (scale, soft-cap, the additive mask as the
// general kernel adds it, causal / window range);
// 3. per q head (one warp each) the running max and exp sums; 4. P V: a thread per value
// dim over the tile, added to its registers' running sums rescaled to the new max. Then
// the split's (max, sum, acc) to scratch, and the last split of the
// kv head to arrive merges all the splits with the sink, every head of the group at once.
#include <math_constants.h>

#include <algorithm>

#include "lmx/backend/cuda/decode_attention.h"
#include "lmx/backend/cuda/dependent_launch.cuh"
#include "lmx/backend/cuda/device_values.cuh"

namespace lmx::cuda::detail {
namespace {

constexpr int kThreads = 128;
constexpr int kWarps = kThreads / 32;
constexpr int kLanesPerKey = kThreads / static_cast<int>(kDecodeKeys);  // 4
static_assert(kLanesPerKey * kDecodeKeys == kThreads, "threads cover the split's keys");
constexpr int kLoadBatch = 16;    // tile loads in flight per thread
constexpr int kMergeLoads = 16;   // splits' partial outputs in flight per thread in the merge
constexpr int kDimsPerThread = static_cast<int>((kDecodeMaxHeadDim + kThreads - 1) / kThreads);

// Row stride (floats) of a K / V tile in shared memory: the dims rounded up to 32, plus 4,
// so that the score loop's 8 keys x 4 lanes of a warp fall in 32 different banks.
__host__ __device__ inline int tile_stride(int64_t dims) { return static_cast<int>((dims + 31) / 32 * 32 + 4); }

size_t shared_bytes(const Attention& a) {
  const int64_t group = a.q_heads / a.kv_heads;
  return static_cast<size_t>(group * a.head_dim + 2 * kDecodeKeys * tile_stride(std::max(a.head_dim, a.v_head_dim))) *
         sizeof(float);
}

struct Range {
  int64_t kv_len, begin, end;  // keys visible to the query: [begin, end)
};

__device__ Range visible(const Attention& a, const int64_t* device_position) {
  const int64_t kv_len = device_position ? *device_position + 1 : a.kv_len;
  const int64_t pos = device_position ? *device_position : a.q_offset;
  Range r{kv_len, 0, kv_len};
  if (a.causal && pos + 1 < r.end) r.end = pos + 1;
  if (a.window > 0 && pos - a.window + 1 > 0) r.begin = pos - a.window + 1;
  return r;
}

// tile[jj * stride + d] = src[base + (j0 + jj) * key_stride + d * dim_stride] for keys in [lo, hi),
// 0 for the split's other keys (their scores are -inf, and 0 * 0 adds nothing to P V).
template <int DT>
__device__ void load_tile(const void* src, int64_t base, int64_t key_stride, int64_t dim_stride, int64_t j0,
                          int64_t lo, int64_t hi, int dims, int stride, float* tile) {
  const int n = static_cast<int>(kDecodeKeys) * dims;
  for (int i0 = threadIdx.x; i0 < n; i0 += kThreads * kLoadBatch) {
    float v[kLoadBatch];
#pragma unroll
    for (int u = 0; u < kLoadBatch; ++u) {
      const int i = i0 + u * kThreads, jj = i / dims, d = i - jj * dims;
      const int64_t j = j0 + jj;
      v[u] = i < n && j >= lo && j < hi ? load_float(src, DT, base + j * key_stride + d * dim_stride) : 0.0f;
    }
#pragma unroll
    for (int u = 0; u < kLoadBatch; ++u) {
      const int i = i0 + u * kThreads, jj = i / dims;
      if (i < n) tile[jj * stride + (i - jj * dims)] = v[u];
    }
  }
}

// Eight consecutive elements at src[i] (16-byte aligned) as floats.
template <int DT>
__device__ __forceinline__ void load8(const void* src, int64_t i, float (&v)[8]) {
  if constexpr (DT == kF32) {
    const float4 x = __ldg(reinterpret_cast<const float4*>(static_cast<const float*>(src) + i));
    const float4 y = __ldg(reinterpret_cast<const float4*>(static_cast<const float*>(src) + i) + 1);
    v[0] = x.x, v[1] = x.y, v[2] = x.z, v[3] = x.w, v[4] = y.x, v[5] = y.y, v[6] = y.z, v[7] = y.w;
  } else {
    const uint4 w = __ldg(reinterpret_cast<const uint4*>(static_cast<const uint16_t*>(src) + i));
    const uint32_t words[4] = {w.x, w.y, w.z, w.w};
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const uint16_t lo = static_cast<uint16_t>(words[e] & 0xffffu), hi = static_cast<uint16_t>(words[e] >> 16);
      v[2 * e] = DT == kBF16 ? bf16_to_float(lo) : f16_to_float(lo);
      v[2 * e + 1] = DT == kBF16 ? bf16_to_float(hi) : f16_to_float(hi);
    }
  }
}

// load_tile with 16-byte loads, 8 elements each: rows of contiguous dims (a multiple of 8)
// whose starts are 16-byte aligned (the KV caches' buffers). Keys outside [lo, hi) are 0.
template <int DT>
__device__ void load_tile_vec(const void* src, int64_t base, int64_t key_stride, int64_t j0, int64_t lo, int64_t hi,
                              int dims, int stride, float* tile) {
  constexpr int kVecBatch = DT == kF32 ? 4 : 8;  // 8-element chunks in flight per thread
  const int per_key = dims / 8, n = static_cast<int>(kDecodeKeys) * per_key;
  for (int c0 = threadIdx.x; c0 < n; c0 += kThreads * kVecBatch) {
    float v[kVecBatch][8];
#pragma unroll
    for (int u = 0; u < kVecBatch; ++u) {
      const int c = c0 + u * kThreads, jj = c / per_key, d0 = (c - jj * per_key) * 8;
      const int64_t j = j0 + jj;
      if (c < n && j >= lo && j < hi) {
        load8<DT>(src, base + j * key_stride + d0, v[u]);
      } else {
#pragma unroll
        for (int e = 0; e < 8; ++e) v[u][e] = 0.0f;
      }
    }
#pragma unroll
    for (int u = 0; u < kVecBatch; ++u) {
      const int c = c0 + u * kThreads, jj = c / per_key, d0 = (c - jj * per_key) * 8;
      if (c < n) {
        float4* dst = reinterpret_cast<float4*>(tile + jj * stride + d0);
        dst[0] = make_float4(v[u][0], v[u][1], v[u][2], v[u][3]);
        dst[1] = make_float4(v[u][4], v[u][5], v[u][6], v[u][7]);
      }
    }
  }
}

// Rows of `dims` contiguous elements from 16-byte aligned starts: the vector loads apply.
template <int DT>
__device__ bool vector_rows(const void* src, int64_t base, int64_t key_stride, int64_t dim_stride, int64_t dims) {
  constexpr int64_t kPer16 = DT == kF32 ? 4 : 8;  // elements in 16 bytes
  return dim_stride == 1 && dims % 8 == 0 && key_stride % kPer16 == 0 && base % kPer16 == 0 &&
         (reinterpret_cast<uintptr_t>(src) & 15) == 0;
}

template <int DT>
__device__ void load_rows(const void* src, int64_t base, int64_t key_stride, int64_t dim_stride, int64_t j0, int64_t lo,
                          int64_t hi, int64_t dims, int stride, float* tile) {
  if (vector_rows<DT>(src, base, key_stride, dim_stride, dims) && (reinterpret_cast<uintptr_t>(tile) & 15) == 0) {
    load_tile_vec<DT>(src, base, key_stride, j0, lo, hi, static_cast<int>(dims), stride, tile);
  } else {
    load_tile<DT>(src, base, key_stride, dim_stride, j0, lo, hi, static_cast<int>(dims), stride, tile);
  }
}

template <int DT>
__device__ void load_tiles(const Attention& a, int64_t b, int64_t kvh, int64_t j0, int64_t lo, int64_t hi, int stride,
                           float* kt, float* vt) {
  load_rows<DT>(a.k, b * a.k_strides[0] + kvh * a.k_strides[1], a.k_strides[2], a.k_strides[3], j0, lo, hi,
                a.head_dim, stride, kt);
  load_rows<DT>(a.v, b * a.v_strides[0] + kvh * a.v_strides[1], a.v_strides[2], a.v_strides[3], j0, lo, hi,
                a.v_head_dim, stride, vt);
}

// kG: the GQA group rounded up to a power of two; the per-thread arrays have kG entries
// (registers, and so the blocks an SM holds, follow the model's group, not the largest).
template <int kG>
__global__ void __launch_bounds__(kThreads) decode_attention_kernel(Attention a, const int64_t* device_position,
                                                                    int tiles_per_split, float* scratch,
                                                                    unsigned* counters) {
  extern __shared__ float smem[];  // qs [group][D], kt and vt [kDecodeKeys][stride]
  __shared__ float ps[kDecodeMaxGroup][kDecodeKeys];
  __shared__ float ms[kDecodeMaxGroup], ls[kDecodeMaxGroup], cs[kDecodeMaxGroup];
  __shared__ bool last;
  await_inputs();
  const int64_t kvh = blockIdx.x, split = blockIdx.y, b = blockIdx.z;
  const int64_t splits = gridDim.y;
  const int group = static_cast<int>(a.q_heads / a.kv_heads);
  const int t = threadIdx.x, warp = t / 32, lane = t % 32;
  const int64_t D = a.head_dim, Dv = a.v_head_dim;
  const int stride = tile_stride(D > Dv ? D : Dv);
  float* qs = smem;
  float* kt = qs + group * D;
  float* vt = kt + kDecodeKeys * stride;
  const Range r = visible(a, device_position);
  const int64_t split_keys = kDecodeKeys * tiles_per_split;
  const int64_t active = (r.kv_len + split_keys - 1) / split_keys;  // splits that hold keys
  const int64_t part_size = Dv + 2;
  auto part = [&](int64_t h, int64_t s) { return scratch + ((b * a.q_heads + h) * splits + s) * part_size; };

  if (split < active) {
    for (int64_t i = t; i < group * D; i += kThreads) {
      const int64_t g = i / D, d = i % D, h = kvh * group + g;
      qs[i] = a.q[b * a.q_strides[0] + h * a.q_strides[1] + d * a.q_strides[3]];
    }
    if (t < group) ms[t] = -CUDART_INF_F, ls[t] = 0.0f;
    // This thread's value dims t, t + kThreads, ...: the running P V of every q head.
    float acc[kDimsPerThread][kG];
#pragma unroll
    for (int u = 0; u < kDimsPerThread; ++u)
#pragma unroll
      for (int g = 0; g < kG; ++g) acc[u][g] = 0.0f;
    for (int tile = 0; tile < tiles_per_split; ++tile) {  // the same branches for every thread
      const int64_t j0 = split * split_keys + tile * kDecodeKeys;
      if (j0 >= r.end) break;
      if (j0 + kDecodeKeys <= r.begin) continue;
      const int64_t lo = j0 > r.begin ? j0 : r.begin, hi = j0 + kDecodeKeys < r.end ? j0 + kDecodeKeys : r.end;
      __syncthreads();  // the previous tile's K, V and ps are read
      switch (a.kv_dtype) {
        case kF16: load_tiles<kF16>(a, b, kvh, j0, lo, hi, stride, kt, vt); break;
        case kBF16: load_tiles<kBF16>(a, b, kvh, j0, lo, hi, stride, kt, vt); break;
        default: load_tiles<kF32>(a, b, kvh, j0, lo, hi, stride, kt, vt); break;
      }
      __syncthreads();
      // Scores: key j0 + t / 4, dims t % 4, t % 4 + 4, ...
      const int jj = t / kLanesPerKey;
      const int64_t j = j0 + jj;
      const int sub = t % kLanesPerKey;
      const bool in_range = j >= r.begin && j < r.end;
      float dot[kG];
#pragma unroll
      for (int g = 0; g < kG; ++g) dot[g] = 0.0f;
      const float* krow = kt + jj * stride;
      for (int64_t d = sub; d < D; d += kLanesPerKey) {
        const float kv = krow[d];
#pragma unroll
        for (int g = 0; g < kG; ++g)
          if (g < group) dot[g] += qs[g * D + d] * kv;
      }
#pragma unroll
      for (int g = 0; g < kG; ++g) {
        if (g >= group) break;
        float s = dot[g];
        s += __shfl_xor_sync(0xffffffffu, s, 1);
        s += __shfl_xor_sync(0xffffffffu, s, 2);
        s *= a.scale;
        if (a.softcap > 0.0f) s = a.softcap * tanhf(s / a.softcap);
        if (a.mask && in_range && sub == 0)  // a left-padded batch row's -inf before its first key
          s += a.mask[b * a.mask_strides[0] + (kvh * group + g) * a.mask_strides[1] + j * a.mask_strides[3]];
        if (sub == 0) ps[g][jj] = in_range ? s : -CUDART_INF_F;
      }
      __syncthreads();
      // Per q head (one warp each, a lane per key): the running max and sum, and the factor
      // cs that rescales the P V so far to the new max.
      for (int g = warp; g < group; g += kWarps) {
        const float s = ps[g][lane];
        float m = s;
        for (int o = 16; o > 0; o >>= 1) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, o));
        const float m_old = ms[g], m_new = fmaxf(m_old, m);
        const float p = m_new == -CUDART_INF_F ? 0.0f : expf(s - m_new);
        float l = p;
        for (int o = 16; o > 0; o >>= 1) l += __shfl_xor_sync(0xffffffffu, l, o);
        ps[g][lane] = p;
        __syncwarp();
        if (lane == 0) {
          const float c = m_old == -CUDART_INF_F ? 0.0f : expf(m_old - m_new);
          cs[g] = c, ms[g] = m_new, ls[g] = ls[g] * c + l;
        }
      }
      __syncthreads();
      // P V over the tile (keys out of range have p = 0 and v = 0).
#pragma unroll
      for (int u = 0; u < kDimsPerThread; ++u) {
        const int64_t d = t + u * kThreads;
        if (d >= Dv) break;
        float tile_acc[kG];
#pragma unroll
        for (int g = 0; g < kG; ++g) tile_acc[g] = 0.0f;
#pragma unroll 8
        for (int k = 0; k < static_cast<int>(kDecodeKeys); ++k) {
          const float v = vt[k * stride + d];
#pragma unroll
          for (int g = 0; g < kG; ++g)
            if (g < group) tile_acc[g] += ps[g][k] * v;
        }
#pragma unroll
        for (int g = 0; g < kG; ++g)
          if (g < group) acc[u][g] = acc[u][g] * cs[g] + tile_acc[g];
      }
    }
#pragma unroll
    for (int u = 0; u < kDimsPerThread; ++u) {
      const int64_t d = t + u * kThreads;
      if (d >= Dv) break;
#pragma unroll
      for (int g = 0; g < kG; ++g)
        if (g < group) part(kvh * group + g, split)[2 + d] = acc[u][g];
    }
    __syncthreads();  // ms / ls final
    if (t < group) part(kvh * group + t, split)[0] = ms[t], part(kvh * group + t, split)[1] = ls[t];
  }
  // The last split of this kv head to arrive merges.
  __threadfence();
  __syncthreads();
  if (t == 0) {
    const unsigned arrived = atomicAdd(&counters[b * a.kv_heads + kvh], 1u);
    last = arrived == static_cast<unsigned>(splits - 1);
  }
  __syncthreads();
  if (!last) return;
  __threadfence();
  // Every head of the group at once, each step one round trip to memory at most: the
  // splits' (max, sum) to shared memory (the tiles' space, free now), per-head max, weights
  // exp(m - max) and total, then out = sum over splits of weight * acc / total. Past C
  // splits (long contexts) in chunks, the output accumulating in place.
  const int64_t C = (group * D + 2 * kDecodeKeys * stride) / (2 * group);  // splits per chunk
  float* mm = smem;          // [group][C]: split max, then weight
  float* ll = smem + group * C;  // [group][C]: split sum
  if (t < group) ms[t] = a.sinks ? a.sinks[kvh * group + t] : -CUDART_INF_F, ls[t] = 0.0f;
  auto load_chunk = [&](int64_t c0, int64_t cn) {
    __syncthreads();  // mm / ll are free
#pragma unroll 4
    for (int64_t i = t; i < group * cn; i += kThreads) {
      const int64_t g = i / cn, s = i - g * cn;
      const float* p = part(kvh * group + g, c0 + s);
      mm[g * C + s] = __ldcg(p), ll[g * C + s] = __ldcg(p + 1);
    }
    __syncthreads();
  };
  for (int64_t c0 = 0; c0 < active; c0 += C) {
    const int64_t cn = active - c0 < C ? active - c0 : C;
    load_chunk(c0, cn);
    for (int g = warp; g < group; g += kWarps) {
      float m = -CUDART_INF_F;
      for (int64_t s = lane; s < cn; s += 32) m = fmaxf(m, mm[g * C + s]);
      for (int o = 16; o > 0; o >>= 1) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, o));
      if (lane == 0) ms[g] = fmaxf(ms[g], m);
    }
  }
  const bool one_chunk = active <= C;
  for (int64_t c0 = 0; c0 < active; c0 += C) {
    const int64_t cn = active - c0 < C ? active - c0 : C;
    if (one_chunk) __syncthreads();  // ms final
    else load_chunk(c0, cn);
    for (int g = warp; g < group; g += kWarps) {
      float sum = 0.0f;
      for (int64_t s = lane; s < cn; s += 32) {
        const float m = mm[g * C + s];
        const float w = m == -CUDART_INF_F ? 0.0f : expf(m - ms[g]);
        sum += w * ll[g * C + s];
        mm[g * C + s] = w;
      }
      for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
      if (lane == 0) ls[g] += sum;
    }
    __syncthreads();
    // out = sum over splits of weight * acc, two outputs a thread and kMergeLoads splits'
    // accs in flight at once (one memory round trip per batch, not one per split).
    auto finish = [&](int64_t i, float o) {
      const int64_t g = i / Dv, d = i - g * Dv, h = kvh * group + g;
      float* out = a.out + b * a.out_strides[0] + h * a.out_strides[1] + d * a.out_strides[3];
      if (c0 > 0) o += *out;
      if (c0 + cn < active) {
        *out = o;
        return;
      }
      const float total = ls[g] + (a.sinks ? expf(a.sinks[h] - ms[g]) : 0.0f);
      *out = ms[g] == -CUDART_INF_F ? 0.0f : o / total;  // no visible key: 0
    };
    for (int64_t i0 = t; i0 < group * Dv; i0 += 2 * kThreads) {
      const int64_t i1 = i0 + kThreads;
      const bool two = i1 < group * Dv;
      const int64_t g0 = i0 / Dv, g1 = two ? i1 / Dv : g0;
      const float* p0 = part(kvh * group + g0, c0) + 2 + (i0 - g0 * Dv);
      const float* p1 = part(kvh * group + g1, c0) + 2 + (two ? i1 - g1 * Dv : 0);
      float o0 = 0.0f, o1 = 0.0f;
      for (int64_t s0 = 0; s0 < cn; s0 += kMergeLoads) {
        float v0[kMergeLoads], v1[kMergeLoads];
#pragma unroll
        for (int u = 0; u < kMergeLoads; ++u) {
          const bool in = s0 + u < cn;
          v0[u] = in ? __ldcg(p0 + (s0 + u) * part_size) : 0.0f;
          v1[u] = in && two ? __ldcg(p1 + (s0 + u) * part_size) : 0.0f;
        }
#pragma unroll
        for (int u = 0; u < kMergeLoads; ++u) {
          if (s0 + u >= cn) break;
          o0 += mm[g0 * C + s0 + u] * v0[u];
          o1 += mm[g1 * C + s0 + u] * v1[u];
        }
      }
      finish(i0, o0);
      if (two) finish(i1, o1);
    }
  }
  if (t == 0) counters[b * a.kv_heads + kvh] = 0;  // ready for the next launch
}

template <bool kBf16>
__global__ void write_at_position_kernel(PositionedWrite w) {
  await_inputs();
  const int64_t total = w.batch * w.heads * w.seq * w.dim;
  const int64_t pos = *w.position;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t d = i % w.dim, s = (i / w.dim) % w.seq, h = (i / w.dim / w.seq) % w.heads;
    const int64_t b = i / w.dim / w.seq / w.heads;
    store_kv<kBf16>(w.dst, b * w.dst_strides[0] + h * w.dst_strides[1] + (pos + s) * w.dst_strides[2] + d * w.dst_strides[3],
                    w.src[b * w.src_strides[0] + h * w.src_strides[1] + s * w.src_strides[2] + d * w.src_strides[3]]);
  }
}

}  // namespace

bool decode_attention_supported(const Attention& a) {
  return a.q_len == 1 && !a.quantized && a.kv_heads > 0 && a.q_heads % a.kv_heads == 0 &&
         a.q_heads / a.kv_heads <= kDecodeMaxGroup && a.head_dim <= kDecodeMaxHeadDim && a.head_dim > 0 &&
         a.v_head_dim <= kDecodeMaxHeadDim && a.v_head_dim > 0 && a.batch > 0 && a.batch <= 65535 &&
         a.kv_heads <= 65535 && (a.kv_dtype == kF32 || a.kv_dtype == kF16 || a.kv_dtype == kBF16);
}

int decode_tiles_per_split(const Attention& a) {
  int tiles = 1;
  while (tiles < kDecodeMaxTilesPerSplit && a.batch * a.kv_heads >= 32 * tiles) tiles *= 2;
  return tiles;
}

int64_t decode_attention_scratch_floats(const Attention& a, int64_t keys) {
  const int64_t split_keys = kDecodeKeys * decode_tiles_per_split(a);
  const int64_t splits = (keys + split_keys - 1) / split_keys;
  return a.batch * a.q_heads * splits * (a.v_head_dim + 2);
}

int64_t decode_attention_counters(const Attention& a) { return a.batch * a.kv_heads; }

cudaError_t launch_decode_attention(const Attention& a, const int64_t* device_position, int64_t keys, float* scratch,
                                    unsigned* counters, cudaStream_t stream) {
  const int tiles = decode_tiles_per_split(a);
  const int64_t split_keys = kDecodeKeys * tiles;
  const int64_t splits = (keys + split_keys - 1) / split_keys;
  if (splits <= 0 || splits > 65535) return cudaErrorInvalidValue;
  const dim3 grid(static_cast<unsigned>(a.kv_heads), static_cast<unsigned>(splits), static_cast<unsigned>(a.batch));
  const size_t bytes = shared_bytes(a);
  const int64_t group = a.q_heads / a.kv_heads;
  auto kernel = group <= 1 ? decode_attention_kernel<1>
                : group <= 2 ? decode_attention_kernel<2>
                : group <= 4 ? decode_attention_kernel<4>
                : group <= 8 ? decode_attention_kernel<8>
                             : decode_attention_kernel<static_cast<int>(kDecodeMaxGroup)>;
  if (bytes > 48 * 1024) {  // past it, dynamic shared memory needs an opt-in (per device: set each time)
    if (cudaError_t e =
            cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes));
        e != cudaSuccess) {
      return e;
    }
  }
  return launch_early(kernel, grid, kThreads, bytes, stream, a, device_position, tiles, scratch, counters);
}

cudaError_t launch_write_at_position(const PositionedWrite& w, cudaStream_t stream) {
  const int64_t total = w.batch * w.heads * w.seq * w.dim;
  if (total <= 0) return cudaSuccess;
  const int64_t blocks = std::min<int64_t>((total + 255) / 256, 4096);
  return launch_early(w.bf16_dst ? write_at_position_kernel<true> : write_at_position_kernel<false>,
                      static_cast<unsigned>(blocks), 256, 0, stream, w);
}

}  // namespace lmx::cuda::detail
