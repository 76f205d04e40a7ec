// Row reductions (one block per row, f64 partial sums as the CPU keeps them) and the
// recurrent scans: one thread per state row (p of a (batch, head)) for the selective scan,
// one thread per state column (j of a (batch, value head)) for the gated delta rule, each
// walking the sequence in order and summing in the CPU's order.
#include <math_constants.h>

#include "lmx/backend/cuda/device_values.cuh"
#include "lmx/base/env_switch.h"
#include "lmx/backend/cuda/scan_kernels.h"

namespace lmx::cuda::detail {
namespace {

enum Kind { kSum = 0, kMean, kMax, kMin, kLogSumExp, kArgmax };
constexpr int kThreads = 256;

// (value, index) of a row's argmax: the first NaN, else the first maximum (double or float
// values: the same order for f32 inputs).
template <class T>
__device__ __forceinline__ bool argmax_better(T va, int64_t ia, T vb, int64_t ib) {
  const bool na = isnan(va), nb = isnan(vb);
  if (na != nb) return na;
  if (!na && va != vb) return va > vb;
  return ia < ib;
}

// Max (NaN wins) or min (NaN wins) of two candidates.
__device__ double pick(int kind, double a, double b) {
  if (isnan(a) || isnan(b)) return isnan(a) ? a : b;
  return kind == kMin ? fmin(a, b) : fmax(a, b);
}

__global__ void reduce_rows_kernel(int kind, const void* x, int dtype, int64_t n, void* out) {
  __shared__ double sv[kThreads];
  __shared__ int64_t si[kThreads];
  const int64_t base = static_cast<int64_t>(blockIdx.x) * n;
  const int tid = threadIdx.x;
  double v = 0.0;
  int64_t idx = n;
  if (kind == kSum || kind == kMean) {
    for (int64_t i = tid; i < n; i += blockDim.x) v += load_double(x, dtype, base + i);
  } else if (kind == kMax || kind == kMin) {
    v = kind == kMax ? -CUDART_INF : CUDART_INF;
    for (int64_t i = tid; i < n; i += blockDim.x) v = pick(kind, v, load_double(x, dtype, base + i));
  } else if (kind == kLogSumExp) {  // the maximum, NaN passed over as std::max does
    v = -CUDART_INF;
    for (int64_t i = tid; i < n; i += blockDim.x) {
      const double e = load_double(x, dtype, base + i);
      if (e > v) v = e;
    }
  } else {
    v = -CUDART_INF;
    for (int64_t i = tid; i < n; i += blockDim.x) {
      const double e = load_double(x, dtype, base + i);
      if (idx == n || argmax_better(e, i, v, idx)) v = e, idx = i;
    }
  }
  sv[tid] = v, si[tid] = idx;
  __syncthreads();
  for (int s = blockDim.x / 2; s > 0; s >>= 1) {
    if (tid < s) {
      const double a = sv[tid], b = sv[tid + s];
      if (kind == kSum || kind == kMean) {
        sv[tid] = a + b;
      } else if (kind == kMax || kind == kMin) {
        sv[tid] = pick(kind, a, b);
      } else if (kind == kLogSumExp) {
        sv[tid] = b > a ? b : a;
      } else if (si[tid + s] != n && (si[tid] == n || argmax_better(b, si[tid + s], a, si[tid]))) {
        sv[tid] = b, si[tid] = si[tid + s];
      }
    }
    __syncthreads();
  }
  if (kind == kLogSumExp) {
    const double m = sv[0];
    __syncthreads();
    if (isinf(m)) {
      if (tid == 0) store_double(out, dtype, blockIdx.x, m);
      return;
    }
    double s = 0.0;
    for (int64_t i = tid; i < n; i += blockDim.x) s += exp(load_double(x, dtype, base + i) - m);
    sv[tid] = s;
    __syncthreads();
    for (int st = blockDim.x / 2; st > 0; st >>= 1) {
      if (tid < st) sv[tid] += sv[tid + st];
      __syncthreads();
    }
    if (tid == 0) store_double(out, dtype, blockIdx.x, m + log(sv[0]));
    return;
  }
  if (tid != 0) return;
  if (kind == kArgmax) {
    static_cast<int32_t*>(out)[blockIdx.x] = static_cast<int32_t>(si[0] == n ? 0 : si[0]);
  } else {
    store_double(out, dtype, blockIdx.x, kind == kMean ? sv[0] / static_cast<double>(n) : sv[0]);
  }
}

// The argmax of long f32 rows (a decode step's logits: one row of 128K at batch 1) in two
// launches: blocks of kArgmaxThreads over slices of kArgmaxSlice values of a row, each thread
// with kArgmaxLoads independent loads in flight and float compares (exact for f32 values, the
// same order as argmax_better), write their slice's best (value, index) to scratch; then a
// warp per row picks among its slices. The general kernel above took ~85 us a row of 128K on
// an H100 (one double compare after each dependent load), one block of 1024 threads a row
// with eight loads each ~30 us (session 25: one SM reads the whole row).
constexpr int kArgmaxThreads = 256;
constexpr int kArgmaxLoads = 8;
constexpr int64_t kArgmaxSlice = int64_t{kArgmaxThreads} * kArgmaxLoads;
constexpr int64_t kLongArgmaxRow = 4096;

struct ArgmaxPart {
  float value;
  int64_t index;  // n: no candidate
};

// The warp's best (value, index) in lane 0 (index n: no candidate).
__device__ __forceinline__ void warp_argmax(float& best, int64_t& at, int64_t n) {
  for (int off = 16; off > 0; off >>= 1) {
    const float ov = __shfl_down_sync(0xffffffffu, best, off);
    const int64_t oi = __shfl_down_sync(0xffffffffu, at, off);
    if (oi != n && (at == n || argmax_better(ov, oi, best, at))) best = ov, at = oi;
  }
}

// Block (slice, row): the slice's best to parts[row * gridDim.x + slice].
__global__ void __launch_bounds__(kArgmaxThreads) argmax_slices_kernel(const float* __restrict__ x, int64_t n,
                                                                      ArgmaxPart* parts) {
  __shared__ float sv[kArgmaxThreads / 32];
  __shared__ int64_t si[kArgmaxThreads / 32];
  const float* row = x + static_cast<int64_t>(blockIdx.y) * n;
  const int64_t i0 = static_cast<int64_t>(blockIdx.x) * kArgmaxSlice + threadIdx.x;
  float v[kArgmaxLoads];
#pragma unroll
  for (int u = 0; u < kArgmaxLoads; ++u) {
    const int64_t i = i0 + int64_t{u} * kArgmaxThreads;
    v[u] = i < n ? __ldg(row + i) : 0.0f;
  }
  float best = 0.0f;
  int64_t at = n;
#pragma unroll
  for (int u = 0; u < kArgmaxLoads; ++u) {
    const int64_t i = i0 + int64_t{u} * kArgmaxThreads;
    if (i < n && (at == n || argmax_better(v[u], i, best, at))) best = v[u], at = i;
  }
  warp_argmax(best, at, n);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) sv[warp] = best, si[warp] = at;
  __syncthreads();
  if (warp != 0) return;
  best = lane < kArgmaxThreads / 32 ? sv[lane] : 0.0f;
  at = lane < kArgmaxThreads / 32 ? si[lane] : n;
  warp_argmax(best, at, n);
  if (lane == 0) parts[static_cast<int64_t>(blockIdx.y) * gridDim.x + blockIdx.x] = {best, at};
}

// A warp per row: the best of the row's slices.
__global__ void argmax_pick_kernel(const ArgmaxPart* __restrict__ parts, int64_t slices, int64_t n, int32_t* out) {
  const ArgmaxPart* p = parts + static_cast<int64_t>(blockIdx.x) * slices;
  float best = 0.0f;
  int64_t at = n;
  for (int64_t s = threadIdx.x; s < slices; s += 32) {
    const ArgmaxPart q = p[s];
    if (q.index != n && (at == n || argmax_better(q.value, q.index, best, at))) best = q.value, at = q.index;
  }
  warp_argmax(best, at, n);
  if (threadIdx.x == 0) out[blockIdx.x] = static_cast<int32_t>(at == n ? 0 : at);
}

// Rows of at most kShortRow values, a thread each, in the CPU's order (reduce_row of
// lmx/core/ops/reduce.cpp, the same values): a block per row left all but a few of its
// threads idle (a sum over grouped heads: 262,144 rows of 7).
constexpr int64_t kShortRow = 32;

__global__ void reduce_short_rows_kernel(int kind, const void* x, int dtype, int64_t rows, int64_t n, void* out) {
  const int64_t r = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (r >= rows) return;
  const int64_t base = r * n;
  if (kind == kArgmax) {
    int64_t best = 0;
    double m = load_double(x, dtype, base);
    for (int64_t i = 1; i < n && !isnan(m); ++i) {
      const double v = load_double(x, dtype, base + i);
      if (v > m || isnan(v)) m = v, best = i;
    }
    static_cast<int32_t*>(out)[r] = static_cast<int32_t>(best);
    return;
  }
  double result = 0.0;
  if (kind == kSum || kind == kMean) {
    for (int64_t i = 0; i < n; ++i) result += load_double(x, dtype, base + i);
    if (kind == kMean) result /= static_cast<double>(n);
  } else if (kind == kMax || kind == kMin) {
    result = load_double(x, dtype, base);
    for (int64_t i = 1; i < n && !isnan(result); ++i) {
      const double v = load_double(x, dtype, base + i);
      if (isnan(v) || (kind == kMax ? v > result : v < result)) result = v;
    }
  } else {  // logsumexp: the maximum as std::max takes it (a NaN after the first value passed over)
    double m = -CUDART_INF;
    for (int64_t i = 0; i < n; ++i) {
      const double v = load_double(x, dtype, base + i);
      m = m < v ? v : m;
    }
    if (isinf(m)) {
      result = m;
    } else {
      double sum = 0.0;
      for (int64_t i = 0; i < n; ++i) sum += exp(load_double(x, dtype, base + i) - m);
      result = m + log(sum);
    }
  }
  store_double(out, dtype, r, result);
}

// The CPU's dot (lmx/backend/cpu/ssm_scan.cpp): eight partial sums over the first
// n & ~7 terms, combined pairwise, then the tail in order.
__device__ float dot_like_cpu(const float* a, const float* b, int64_t n) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
#pragma unroll
    for (int j = 0; j < 8; ++j) acc[j] = __fadd_rn(acc[j], __fmul_rn(a[i + j], b[i + j]));
  }
  float s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
  for (; i < n; ++i) s = __fadd_rn(s, __fmul_rn(a[i], b[i]));
  return s;
}

__global__ void ssm_scan_kernel(SsmScan a) {
  const int64_t H = a.heads, P = a.head_dim, N = a.state_dim, G = a.groups, L = a.seq;
  const int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= a.batch * H * P) return;
  const int64_t i = idx / P, p = idx % P, b = i / H, h = i % H, g = h / (H / G);
  float* row = a.state + (i * P + p) * N;
  const float* ah = a.a + h * N;
  const float dh = a.d ? a.d[h] : 0.0f;
  for (int64_t t = 0; t < L; ++t) {
    const int64_t bt = b * L + t;
    const float dt = a.dt[bt * H + h];
    const float xp = a.x[(bt * H + h) * P + p];
    const float scale = dt * xp;
    const float* B = a.b + (bt * G + g) * N;
    const float* C = a.c + (bt * G + g) * N;
    for (int64_t n = 0; n < N; ++n) row[n] = __fadd_rn(__fmul_rn(expf(dt * ah[n]), row[n]), __fmul_rn(scale, B[n]));
    a.y[(bt * H + h) * P + p] = __fadd_rn(dot_like_cpu(row, C, N), __fmul_rn(dh, xp));
  }
}

__global__ void gated_delta_kernel(GatedDelta a) {
  const int64_t Hv = a.v_heads, Hk = a.k_heads, K = a.k_dim, V = a.v_dim, L = a.seq;
  const int64_t i = blockIdx.x, b = i / Hv, h = i % Hv, hk = h / (Hv / Hk);
  float* S = a.state + i * K * V;  // [K, V]
  for (int64_t j = threadIdx.x; j < V; j += blockDim.x) {
    for (int64_t t = 0; t < L; ++t) {
      const int64_t bt = b * L + t;
      const float decay = expf(a.g[bt * Hv + h]);
      const float beta = a.beta[bt * Hv + h];
      const float* q = a.q + (bt * Hk + hk) * K;
      const float* k = a.k + (bt * Hk + hk) * K;
      float u = 0.0f;
      for (int64_t kk = 0; kk < K; ++kk) u = __fadd_rn(u, __fmul_rn(S[kk * V + j], k[kk]));
      u = __fmul_rn(a.v[(bt * Hv + h) * V + j] - __fmul_rn(decay, u), beta);
      float o = 0.0f;
      for (int64_t kk = 0; kk < K; ++kk) {
        const float s = __fadd_rn(__fmul_rn(decay, S[kk * V + j]), __fmul_rn(k[kk], u));
        S[kk * V + j] = s;
        o = __fadd_rn(o, __fmul_rn(s, q[kk]));
      }
      a.out[(bt * Hv + h) * V + j] = o;
    }
  }
}

}  // namespace

size_t reduce_rows_scratch(int kind, int dtype, int64_t rows, int64_t n) {
  if (kind != kArgmax || dtype != kF32 || n < kLongArgmaxRow || rows > 65535 || !cuda_long_row_argmax()) return 0;
  return static_cast<size_t>(rows * ((n + kArgmaxSlice - 1) / kArgmaxSlice)) * sizeof(ArgmaxPart);
}

cudaError_t launch_reduce_rows(int kind, const void* x, int dtype, int64_t rows, int64_t n, void* out, void* scratch,
                               cudaStream_t stream) {
  if (rows <= 0) return cudaSuccess;
  if (rows > 0x7fffffff) return cudaErrorInvalidValue;
  if (n > 0 && n <= kShortRow && cuda_short_row_reduce()) {
    reduce_short_rows_kernel<<<static_cast<unsigned>((rows + kThreads - 1) / kThreads), kThreads, 0, stream>>>(
        kind, x, dtype, rows, n, out);
    return cudaGetLastError();
  }
  if (const size_t bytes = reduce_rows_scratch(kind, dtype, rows, n); bytes > 0) {
    if (!scratch) return cudaErrorInvalidValue;
    const int64_t slices = (n + kArgmaxSlice - 1) / kArgmaxSlice;
    auto* parts = static_cast<ArgmaxPart*>(scratch);
    argmax_slices_kernel<<<dim3(static_cast<unsigned>(slices), static_cast<unsigned>(rows)), kArgmaxThreads, 0,
                           stream>>>(static_cast<const float*>(x), n, parts);
    if (const cudaError_t e = cudaGetLastError(); e != cudaSuccess) return e;
    argmax_pick_kernel<<<static_cast<unsigned>(rows), 32, 0, stream>>>(parts, slices, n, static_cast<int32_t*>(out));
    return cudaGetLastError();
  }
  reduce_rows_kernel<<<static_cast<unsigned>(rows), kThreads, 0, stream>>>(kind, x, dtype, n, out);
  return cudaGetLastError();
}

cudaError_t launch_ssm_scan(const SsmScan& a, cudaStream_t stream) {
  const int64_t threads = a.batch * a.heads * a.head_dim;
  if (threads <= 0 || a.seq <= 0) return cudaSuccess;
  ssm_scan_kernel<<<static_cast<unsigned>((threads + 127) / 128), 128, 0, stream>>>(a);
  return cudaGetLastError();
}

cudaError_t launch_gated_delta_scan(const GatedDelta& a, cudaStream_t stream) {
  const int64_t blocks = a.batch * a.v_heads;
  if (blocks <= 0 || a.seq <= 0 || a.v_dim <= 0) return cudaSuccess;
  const int threads = a.v_dim >= 128 ? 128 : 32;
  gated_delta_kernel<<<static_cast<unsigned>(blocks), threads, 0, stream>>>(a);
  return cudaGetLastError();
}

}  // namespace lmx::cuda::detail
