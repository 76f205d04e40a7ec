// Row-wise kernels (one block per row, sums in f32 with a tree reduction) and RoPE (one
// thread per rotated pair or copied value), computing what lmx/backend/cpu's norm.h,
// softmax.h and rope.h document.
#include <math_constants.h>

#include <algorithm>

#include "lmx/backend/cuda/dependent_launch.cuh"
#include "lmx/backend/cuda/device_values.cuh"
#include "lmx/backend/cuda/nn_kernels.h"
#include "lmx/base/env_switch.h"

namespace lmx::cuda::detail {
namespace {

constexpr int kRowThreads = 256;

// Threads per row of the norms: few rows (a decode step) get up to 1024 threads, so each
// thread reads two or so values rather than looping over the row with one block on one SM.
unsigned norm_threads(int64_t rows, int64_t dim) {
  if (rows >= 128) return kRowThreads;
  const int64_t pairs = (dim / 2 + 31) / 32 * 32;
  return static_cast<unsigned>(pairs < 32 ? 32 : pairs > 1024 ? 1024 : pairs);
}

// Sum (or max) over the block; every thread gets the result.
template <bool Max>
__device__ float block_reduce(float v, float* shared) {
  for (int o = 16; o > 0; o >>= 1) {
    const float w = __shfl_xor_sync(0xffffffffu, v, o);
    v = Max ? fmaxf(v, w) : v + w;
  }
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  __syncthreads();  // `shared` may still be read from a previous reduction
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  const int warps = blockDim.x / 32;
  v = lane < warps ? shared[lane] : (Max ? -CUDART_INF_F : 0.0f);
  for (int o = 16; o > 0; o >>= 1) {
    const float w = __shfl_xor_sync(0xffffffffu, v, o);
    v = Max ? fmaxf(v, w) : v + w;
  }
  return v;
}

__device__ __forceinline__ float channel(const Channel& c, int64_t i) { return load_float(c.data, c.dtype, i); }

__global__ void softmax_kernel(const float* x, int64_t dim, int64_t ldx, float* out, int64_t ldo, bool log) {
  __shared__ float shared[32];
  const float* xr = x + blockIdx.x * ldx;
  float* yr = out + blockIdx.x * ldo;
  float mx = -CUDART_INF_F;
  for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) mx = fmaxf(mx, xr[i]);
  mx = block_reduce<true>(mx, shared);
  if (mx == -CUDART_INF_F) {  // every entry -inf: zeros (softmax) or -inf (log_softmax)
    for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) yr[i] = log ? -CUDART_INF_F : 0.0f;
    return;
  }
  float sum = 0.0f;
  for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) sum += expf(xr[i] - mx);
  sum = block_reduce<false>(sum, shared);
  if (log) {
    const float lse = logf(sum);
    for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) yr[i] = xr[i] - mx - lse;
  } else {
    const float inv = 1.0f / sum;
    for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) yr[i] = expf(xr[i] - mx) * inv;
  }
}

// With a residual: sum = x + residual written (each thread reads back only its own items)
// and normed in place of x.
__global__ void rms_norm_kernel(const float* x, int64_t dim, int64_t ldx, float* out, int64_t ldo, Channel w,
                                bool unit_offset, float eps, FusedResidual fused) {
  __shared__ float shared[32];
  await_inputs();
  const float* xr = x + blockIdx.x * ldx;
  float* yr = out + blockIdx.x * ldo;
  if (fused.residual) {
    const float* rr = fused.residual + blockIdx.x * fused.ld_residual;
    float* sr = fused.sum + blockIdx.x * fused.ld_sum;
    for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) sr[i] = xr[i] + rr[i];
    xr = sr;
  }
  float ss = 0.0f;
  for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) ss += xr[i] * xr[i];
  ss = block_reduce<false>(ss, shared);
  const float inv = 1.0f / sqrtf(ss / static_cast<float>(dim) + eps);
  for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) {
    const float wi = w.data ? channel(w, i) + (unit_offset ? 1.0f : 0.0f) : 1.0f;
    yr[i] = xr[i] * inv * wi;
  }
}

// rms_norm_kernel for rows of at most kItems values a thread (a decode step's rows): x, the
// residual and the norm's weights with all of a thread's loads in flight at once and kept
// in registers, where the loops above make three dependent passes over memory. The same
// sums in the same order, so the same bits. (The weights are read after the wait too: a
// training step may have just written them.)
template <int kItems>
__global__ void rms_norm_regs_kernel(const float* x, int64_t dim, int64_t ldx, float* out, int64_t ldo, Channel w,
                                     bool unit_offset, float eps, FusedResidual fused) {
  __shared__ float shared[32];
  float wv[kItems], v[kItems];
  await_inputs();
#pragma unroll
  for (int k = 0; k < kItems; ++k) {
    const int64_t i = threadIdx.x + int64_t{k} * blockDim.x;
    wv[k] = i < dim && w.data ? channel(w, i) + (unit_offset ? 1.0f : 0.0f) : 1.0f;
  }
  const float* xr = x + blockIdx.x * ldx;
  const float* rr = fused.residual ? fused.residual + blockIdx.x * fused.ld_residual : nullptr;
#pragma unroll
  for (int k = 0; k < kItems; ++k) {
    const int64_t i = threadIdx.x + int64_t{k} * blockDim.x;
    v[k] = i < dim ? xr[i] : 0.0f;
  }
  if (rr) {
    float r[kItems];
#pragma unroll
    for (int k = 0; k < kItems; ++k) {
      const int64_t i = threadIdx.x + int64_t{k} * blockDim.x;
      r[k] = i < dim ? rr[i] : 0.0f;
    }
    float* sr = fused.sum + blockIdx.x * fused.ld_sum;
#pragma unroll
    for (int k = 0; k < kItems; ++k) {
      const int64_t i = threadIdx.x + int64_t{k} * blockDim.x;
      v[k] = v[k] + r[k];
      if (i < dim) sr[i] = v[k];
    }
  }
  float ss = 0.0f;
#pragma unroll
  for (int k = 0; k < kItems; ++k) {
    if (threadIdx.x + int64_t{k} * blockDim.x < dim) ss += v[k] * v[k];
  }
  ss = block_reduce<false>(ss, shared);
  const float inv = 1.0f / sqrtf(ss / static_cast<float>(dim) + eps);
  float* yr = out + blockIdx.x * ldo;
#pragma unroll
  for (int k = 0; k < kItems; ++k) {
    const int64_t i = threadIdx.x + int64_t{k} * blockDim.x;
    if (i < dim) yr[i] = v[k] * inv * wv[k];
  }
}

__global__ void layer_norm_kernel(const float* x, int64_t dim, int64_t ldx, float* out, int64_t ldo, Channel w,
                                  Channel b, float eps) {
  __shared__ float shared[32];
  const float* xr = x + blockIdx.x * ldx;
  float* yr = out + blockIdx.x * ldo;
  float s = 0.0f;
  for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) s += xr[i];
  const float mean = block_reduce<false>(s, shared) / static_cast<float>(dim);
  float ss = 0.0f;
  for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) ss += (xr[i] - mean) * (xr[i] - mean);
  ss = block_reduce<false>(ss, shared);
  const float inv = 1.0f / sqrtf(ss / static_cast<float>(dim) + eps);
  for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) {
    float y = (xr[i] - mean) * inv;
    if (w.data) y *= channel(w, i);
    if (b.data) y += channel(b, i);
    yr[i] = y;
  }
}

// Item t of [batch, heads, seq, head_dim - rotary_dim / 2]: the first rotary_dim / 2
// items of a row are pairs, the rest copy one value each. Index: uint32_t where the items
// fit and lmx::cuda_fast_elementwise() is on (the divisions below cost a few times less
// than in 64 bits; sincosf), else int64_t.
template <typename Index>
__global__ void rope_kernel(const float* x, float* out, Rope r) {
  const int64_t half = r.rotary_dim / 2;
  const Index per_row = static_cast<Index>(r.head_dim - half), seq = static_cast<Index>(r.seq),
              heads = static_cast<Index>(r.heads);
  const int64_t total = r.batch * r.heads * r.seq * (r.head_dim - half);
  for (int64_t t64 = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; t64 < total;
       t64 += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const Index t = static_cast<Index>(t64);
    const Index row = t / per_row;
    const int64_t j = t - row * per_row;
    const Index bh = row / seq;
    const int64_t s = row - bh * seq;
    const int64_t h = bh % heads;
    const int64_t b = bh / heads;
    const float* xr = x + b * r.x_strides[0] + h * r.x_strides[1] + s * r.x_strides[2];
    float* yr = out + b * r.out_strides[0] + h * r.out_strides[1] + s * r.out_strides[2];
    const int64_t xs = r.x_strides[3], ys = r.out_strides[3];
    if (j >= half) {  // past the rotary dims: copied through
      const int64_t d = r.rotary_dim + (j - half);
      yr[d * ys] = xr[d * xs];
      continue;
    }
    const int64_t pos = r.positions ? r.positions[b * r.seq + s]
                                    : r.offset + (r.batch_offsets ? r.batch_offsets[b] : 0) + s;
    const float angle = __fmul_rn(static_cast<float>(pos), r.inv_freq[j]);
    float sin_a, cos_a;
    if (sizeof(Index) == 4) {
      sincosf(angle, &sin_a, &cos_a);  // the values of sinf and cosf, in one call
    } else {
      sin_a = sinf(angle), cos_a = cosf(angle);
    }
    const float c = cos_a * r.mscale, sn = sin_a * r.mscale;
    const int64_t i0 = r.traditional ? 2 * j : j, i1 = r.traditional ? 2 * j + 1 : j + half;
    const float x0 = xr[i0 * xs], x1 = xr[i1 * xs];
    yr[i0 * ys] = x0 * c - x1 * sn;
    yr[i1 * ys] = x1 * c + x0 * sn;
  }
}

// Row blockIdx.x, columns in chunks of kCeChunk per blockIdx.y step: one read of the logits,
// one write of the gradient.
constexpr int kCeThreads = 256, kCeChunk = 4 * kCeThreads;
__global__ void cross_entropy_grad_kernel(const float* logits, const float* lse, const int64_t* targets,
                                          const float* coef, float* out, int64_t vocab) {
  const int64_t r = blockIdx.x;
  const float* x = logits + r * vocab;
  float* y = out + r * vocab;
  const float m = lse[r], c = coef[r];
  const int64_t t = targets[r];
  for (int64_t v0 = static_cast<int64_t>(blockIdx.y) * kCeChunk; v0 < vocab;
       v0 += static_cast<int64_t>(gridDim.y) * kCeChunk) {
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const int64_t v = v0 + threadIdx.x + i * kCeThreads;
      if (v < vocab) y[v] = (expf(x[v] - m) - (v == t ? 1.0f : 0.0f)) * c;
    }
  }
}

}  // namespace

cudaError_t launch_softmax(const float* x, int64_t rows, int64_t dim, int64_t ldx, float* out, int64_t ldo,
                           bool log, cudaStream_t stream) {
  if (rows <= 0) return cudaSuccess;
  softmax_kernel<<<static_cast<unsigned>(rows), kRowThreads, 0, stream>>>(x, dim, ldx, out, ldo, log);
  return cudaGetLastError();
}

cudaError_t launch_rms_norm(const float* x, int64_t rows, int64_t dim, int64_t ldx, float* out, int64_t ldo,
                            Channel weight, bool add_unit_offset, float eps, const FusedResidual& fused,
                            cudaStream_t stream) {
  if (rows <= 0) return cudaSuccess;
  if (fused.residual && !fused.sum) return cudaErrorInvalidValue;
  const unsigned threads = norm_threads(rows, dim);
  const int64_t items = (dim + threads - 1) / threads;
  auto kernel = !cuda_norm_in_registers() || items > 8 ? rms_norm_kernel
                : items <= 2                          ? rms_norm_regs_kernel<2>
                : items <= 4                          ? rms_norm_regs_kernel<4>
                                                      : rms_norm_regs_kernel<8>;
  return launch_early(kernel, static_cast<unsigned>(rows), threads, 0, stream, x, dim, ldx, out, ldo, weight,
                      add_unit_offset, eps, fused);
}

cudaError_t launch_layer_norm(const float* x, int64_t rows, int64_t dim, int64_t ldx, float* out, int64_t ldo,
                              Channel weight, Channel bias, float eps, cudaStream_t stream) {
  if (rows <= 0) return cudaSuccess;
  layer_norm_kernel<<<static_cast<unsigned>(rows), norm_threads(rows, dim), 0, stream>>>(x, dim, ldx, out, ldo, weight, bias,
                                                                             eps);
  return cudaGetLastError();
}

cudaError_t launch_rope(const float* x, float* out, const Rope& r, cudaStream_t stream) {
  const int64_t total = r.batch * r.heads * r.seq * (r.head_dim - r.rotary_dim / 2);
  if (total <= 0) return cudaSuccess;
  if (cuda_fast_elementwise() && total <= int64_t{0xffffffff}) {
    rope_kernel<uint32_t><<<grid_for(total, 256), 256, 0, stream>>>(x, out, r);
  } else {
    rope_kernel<int64_t><<<grid_for(total, 256), 256, 0, stream>>>(x, out, r);
  }
  return cudaGetLastError();
}

cudaError_t launch_cross_entropy_grad(const float* logits, const float* lse, const int64_t* targets, const float* coef,
                                      float* out, int64_t rows, int64_t vocab, cudaStream_t stream) {
  if (rows <= 0 || vocab <= 0) return cudaSuccess;
  if (rows > 0x7fffffff) return cudaErrorInvalidValue;
  const dim3 grid(static_cast<unsigned>(rows),
                  static_cast<unsigned>(std::min<int64_t>((vocab + kCeChunk - 1) / kCeChunk, 65535)));
  cross_entropy_grad_kernel<<<grid, kCeThreads, 0, stream>>>(logits, lse, targets, coef, out, vocab);
  return cudaGetLastError();
}

}  // namespace lmx::cuda::detail

