// Decode attention (decode_attention.h): block (kv head, split, batch) of kThreads threads.
// 1. the group's q rows to shared memory; 2. scores: 4 threads per key, each a quarter
// of the dims, summed by two shuffles (scale, soft-cap, causal / window range); 3. per q
// head (one warp each) the split's max and exp sums; 4. P V: a thread per value dim, each
// value read once for the whole group; 5. the split's (max, sum, acc) to scratch, and the
// last split of the kv head to arrive merges all the splits (in split order) with the sink.
#include <math_constants.h>

#include <algorithm>

#include "lmx/backend/cuda/decode_attention.h"
#include "lmx/backend/cuda/device_values.cuh"

namespace lmx::cuda::detail {
namespace {

constexpr int kThreads = 128;
constexpr int kLanesPerKey = kThreads / static_cast<int>(kDecodeKeys);  // 4
static_assert(kLanesPerKey * kDecodeKeys == kThreads, "threads cover the split's keys");

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

__global__ void __launch_bounds__(kThreads) decode_attention_kernel(Attention a, const int64_t* device_position,
                                                                    float* scratch, unsigned* counters) {
  __shared__ float qs[kDecodeMaxGroup][kDecodeMaxHeadDim];
  __shared__ float ps[kDecodeMaxGroup][kDecodeKeys];
  __shared__ float ms[kDecodeMaxGroup], ls[kDecodeMaxGroup];
  __shared__ bool last;
  const int64_t kvh = blockIdx.x, split = blockIdx.y, b = blockIdx.z;
  const int64_t splits = gridDim.y;
  const int group = static_cast<int>(a.q_heads / a.kv_heads);
  const int t = threadIdx.x, warp = t / 32, lane = t % 32;
  const int64_t D = a.head_dim, Dv = a.v_head_dim;
  const Range r = visible(a, device_position);
  const int64_t j0 = split * kDecodeKeys;
  const int64_t active = (r.kv_len + kDecodeKeys - 1) / kDecodeKeys;  // splits that hold keys
  const int64_t part_size = Dv + 2;
  auto part = [&](int64_t h, int64_t s) { return scratch + ((b * a.q_heads + h) * splits + s) * part_size; };

  if (split < active) {
    for (int64_t i = t; i < group * D; i += kThreads) {
      const int64_t g = i / D, d = i % D, h = kvh * group + g;
      qs[g][d] = a.q[b * a.q_strides[0] + h * a.q_strides[1] + d * a.q_strides[3]];
    }
    __syncthreads();
    // Scores: key j0 + t / 4, dims t % 4, t % 4 + 4, ...
    const int64_t j = j0 + t / kLanesPerKey;
    const int sub = t % kLanesPerKey;
    const bool in_range = j >= r.begin && j < r.end;
    float dot[kDecodeMaxGroup];
#pragma unroll
    for (int g = 0; g < kDecodeMaxGroup; ++g) dot[g] = 0.0f;
    if (in_range) {
      const int64_t kbase = b * a.k_strides[0] + kvh * a.k_strides[1] + j * a.k_strides[2];
      for (int64_t d = sub; d < D; d += kLanesPerKey) {
        const float kv = load_float(a.k, a.kv_dtype, kbase + d * a.k_strides[3]);
#pragma unroll
        for (int g = 0; g < kDecodeMaxGroup; ++g)
          if (g < group) dot[g] += qs[g][d] * kv;
      }
    }
#pragma unroll
    for (int g = 0; g < kDecodeMaxGroup; ++g) {
      if (g >= group) break;
      float s = dot[g];
      s += __shfl_xor_sync(0xffffffffu, s, 1);
      s += __shfl_xor_sync(0xffffffffu, s, 2);
      s *= a.scale;
      if (a.softcap > 0.0f) s = a.softcap * tanhf(s / a.softcap);
      if (sub == 0) ps[g][t / kLanesPerKey] = in_range ? s : -CUDART_INF_F;
    }
    __syncthreads();
    // Per q head: the split's max and exp(s - max), one warp per head, a lane per key.
    for (int g = warp; g < group; g += kThreads / 32) {
      const float s = ps[g][lane];
      float m = s;
      for (int o = 16; o > 0; o >>= 1) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, o));
      const float p = m == -CUDART_INF_F ? 0.0f : expf(s - m);
      float l = p;
      for (int o = 16; o > 0; o >>= 1) l += __shfl_xor_sync(0xffffffffu, l, o);
      ps[g][lane] = p;
      if (lane == 0) ms[g] = m, ls[g] = l;
    }
    __syncthreads();
    // P V: a thread per value dim; each value read once for the group.
    const int64_t keys = min(kDecodeKeys, r.kv_len - j0);
    for (int64_t d = t; d < Dv; d += kThreads) {
      float acc[kDecodeMaxGroup];
#pragma unroll
      for (int g = 0; g < kDecodeMaxGroup; ++g) acc[g] = 0.0f;
      const int64_t vbase = b * a.v_strides[0] + kvh * a.v_strides[1] + d * a.v_strides[3];
      for (int64_t jj = 0; jj < keys; ++jj) {
        const int64_t jk = j0 + jj;
        if (jk < r.begin || jk >= r.end) continue;
        const float v = load_float(a.v, a.kv_dtype, vbase + jk * a.v_strides[2]);
#pragma unroll
        for (int g = 0; g < kDecodeMaxGroup; ++g)
          if (g < group) acc[g] += ps[g][jj] * v;
      }
#pragma unroll
      for (int g = 0; g < kDecodeMaxGroup; ++g)
        if (g < group) part(kvh * group + g, split)[2 + d] = acc[g];
    }
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
  for (int g = 0; g < group; ++g) {
    const int64_t h = kvh * group + g;
    float mx = a.sinks ? a.sinks[h] : -CUDART_INF_F;
    for (int64_t s = 0; s < active; ++s) mx = fmaxf(mx, __ldcg(part(h, s)));
    float* out = a.out + b * a.out_strides[0] + h * a.out_strides[1];
    if (mx == -CUDART_INF_F) {  // no visible key
      for (int64_t d = t; d < Dv; d += kThreads) out[d * a.out_strides[3]] = 0.0f;
      continue;
    }
    float sum = a.sinks ? expf(a.sinks[h] - mx) : 0.0f;
    for (int64_t s = 0; s < active; ++s) {
      const float m = __ldcg(part(h, s));
      if (m != -CUDART_INF_F) sum += __ldcg(part(h, s) + 1) * expf(m - mx);
    }
    for (int64_t d = t; d < Dv; d += kThreads) {
      float o = 0.0f;
      for (int64_t s = 0; s < active; ++s) {
        const float m = __ldcg(part(h, s));
        if (m != -CUDART_INF_F) o += __ldcg(part(h, s) + 2 + d) * expf(m - mx);
      }
      out[d * a.out_strides[3]] = o / sum;
    }
  }
  if (t == 0) counters[b * a.kv_heads + kvh] = 0;  // ready for the next launch
}

__global__ void write_at_position_kernel(PositionedWrite w) {
  const int64_t total = w.batch * w.heads * w.seq * w.dim;
  const int64_t pos = *w.position;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t d = i % w.dim, s = (i / w.dim) % w.seq, h = (i / w.dim / w.seq) % w.heads;
    const int64_t b = i / w.dim / w.seq / w.heads;
    w.dst[b * w.dst_strides[0] + h * w.dst_strides[1] + (pos + s) * w.dst_strides[2] + d * w.dst_strides[3]] =
        w.src[b * w.src_strides[0] + h * w.src_strides[1] + s * w.src_strides[2] + d * w.src_strides[3]];
  }
}

}  // namespace

bool decode_attention_supported(const Attention& a) {
  return a.q_len == 1 && !a.quantized && !a.mask && a.kv_heads > 0 && a.q_heads % a.kv_heads == 0 &&
         a.q_heads / a.kv_heads <= kDecodeMaxGroup && a.head_dim <= kDecodeMaxHeadDim && a.head_dim > 0 &&
         a.v_head_dim <= kDecodeMaxHeadDim && a.v_head_dim > 0 && a.batch > 0 && a.batch <= 65535 &&
         a.kv_heads <= 65535 && (a.kv_dtype == kF32 || a.kv_dtype == kF16 || a.kv_dtype == kBF16);
}

int64_t decode_attention_scratch_floats(const Attention& a, int64_t keys) {
  const int64_t splits = (keys + kDecodeKeys - 1) / kDecodeKeys;
  return a.batch * a.q_heads * splits * (a.v_head_dim + 2);
}

int64_t decode_attention_counters(const Attention& a) { return a.batch * a.kv_heads; }

cudaError_t launch_decode_attention(const Attention& a, const int64_t* device_position, int64_t keys, float* scratch,
                                    unsigned* counters, cudaStream_t stream) {
  const int64_t splits = (keys + kDecodeKeys - 1) / kDecodeKeys;
  if (splits <= 0 || splits > 65535) return cudaErrorInvalidValue;
  const dim3 grid(static_cast<unsigned>(a.kv_heads), static_cast<unsigned>(splits), static_cast<unsigned>(a.batch));
  decode_attention_kernel<<<grid, kThreads, 0, stream>>>(a, device_position, scratch, counters);
  return cudaGetLastError();
}

cudaError_t launch_write_at_position(const PositionedWrite& w, cudaStream_t stream) {
  const int64_t total = w.batch * w.heads * w.seq * w.dim;
  if (total <= 0) return cudaSuccess;
  const int64_t blocks = std::min<int64_t>((total + 255) / 256, 4096);
  write_at_position_kernel<<<static_cast<unsigned>(blocks), 256, 0, stream>>>(w);
  return cudaGetLastError();
}

}  // namespace lmx::cuda::detail
