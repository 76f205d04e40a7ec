// Element-wise CUDA kernels: grid-stride loops over the flattened output, each index
// decomposed over the (merged) shape into one offset per operand. Values follow the CPU
// loops of lmx/core: f32 math for floating outputs, int64 for integer ones, double for
// compares and conversions.
#include <algorithm>

#include "lmx/backend/cuda/activation.cuh"
#include "lmx/backend/cuda/dependent_launch.cuh"
#include "lmx/backend/cuda/device_values.cuh"
#include "lmx/backend/cuda/elementwise_kernels.h"
#include "lmx/base/env_switch.h"

namespace lmx::cuda::detail {
namespace {

constexpr int kThreads = 256;

enum Kind { kCopy, kUnary, kBinary, kCompare, kWhere };

// Index: uint32_t where numel fits and lmx::cuda_fast_elementwise() is on (a 32-bit
// division is a few times cheaper than a 64-bit one, and there is one per dim per
// element), else int64_t.
template <typename Index>
__device__ __forceinline__ void offsets_of(const Elementwise& a, Index i, int inputs, int64_t* off) {
  for (int k = 0; k <= inputs; ++k) off[k] = 0;
  for (int d = a.rank - 1; d >= 0; --d) {
    const Index n = static_cast<Index>(a.shape[d]);
    const int64_t c = static_cast<int64_t>(i % n);
    i /= n;
    off[0] += c * a.out.strides[d];
    for (int k = 0; k < inputs; ++k) off[k + 1] += c * a.in[k].strides[d];
  }
}

// A floating value stored as store_double stores it (the same rounding of the same f32).
__device__ __forceinline__ void store_float(void* p, int dt, int64_t i, float v) {
  switch (dt) {
    case kF32: static_cast<float*>(p)[i] = v; return;
    case kF16: static_cast<uint16_t*>(p)[i] = float_to_f16(v); return;
    default: static_cast<uint16_t*>(p)[i] = float_to_bf16(v); return;
  }
}

__device__ __forceinline__ float unary_float(int op, float v) {
  switch (op) {
    case 0: return -v;
    case 1: return fabsf(v);
    case 2: return v * v;
    case 3: return expf(v);
    case 4: return logf(v);
    case 5: return sqrtf(v);
    case 6: return 1.0f / sqrtf(v);
    case 7: return tanhf(v);
    case 8: return 1.0f / (1.0f + expf(-v));
    case 9: return v / (1.0f + expf(-v));
    case 10: return 0.5f * v * (1.0f + erff(v * 0.70710678118654752f));
    case 11: return 0.5f * v * (1.0f + tanhf(0.79788456080286536f * (v + 0.044715f * v * v * v)));
    case 12: return v > 0 ? v + log1pf(expf(-v)) : log1pf(expf(v));
    case 13: return sinf(v);
    case 14: return cosf(v);
    default: return erff(v);
  }
}

__device__ __forceinline__ int64_t unary_int(int op, int64_t v) {
  return op == 0 ? -v : op == 1 ? (v < 0 ? -v : v) : v * v;
}

__device__ __forceinline__ float binary_float(int op, float x, float y) {
  switch (op) {
    case 0: return x + y;
    case 1: return x - y;
    case 2: return x * y;
    case 3: return x / y;
    case 4: return isnan(x) ? x : (x < y ? y : x);  // std::max(x, y)
    case 5: return isnan(x) ? x : (y < x ? y : x);  // std::min(x, y)
    default: return powf(x, y);
  }
}

__device__ __forceinline__ int64_t binary_int(int op, int64_t x, int64_t y) {
  switch (op) {
    case 0: return x + y;
    case 1: return x - y;
    case 2: return x * y;
    case 4: return x < y ? y : x;
    default: return y < x ? y : x;
  }
}

__device__ __forceinline__ bool compare(int op, double x, double y) {
  switch (op) {
    case 0: return x == y;
    case 1: return x != y;
    case 2: return x < y;
    case 3: return x <= y;
    case 4: return x > y;
    default: return x >= y;
  }
}

__device__ __forceinline__ void copy_bits(void* dst, const void* src, int64_t d, int64_t s, int dt) {
  switch (dt) {
    case kI64: static_cast<int64_t*>(dst)[d] = static_cast<const int64_t*>(src)[s]; return;
    case kF32:
    case kI32:
    case kU32: static_cast<uint32_t*>(dst)[d] = static_cast<const uint32_t*>(src)[s]; return;
    case kF16:
    case kBF16: static_cast<uint16_t*>(dst)[d] = static_cast<const uint16_t*>(src)[s]; return;
    default: static_cast<uint8_t*>(dst)[d] = static_cast<const uint8_t*>(src)[s]; return;
  }
}

template <int K, typename Index>
__global__ void elementwise_kernel(Elementwise a, int op) {
  constexpr int inputs = K == kWhere ? 3 : (K == kBinary || K == kCompare) ? 2 : 1;
  constexpr bool kFast = sizeof(Index) == 4;  // the fast path's float stores (the same values)
  const int od = a.out.dtype;
  const bool float_out = is_floating(od);
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < a.numel;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    int64_t off[4];
    offsets_of(a, static_cast<Index>(i), inputs, off);
    void* out = a.out.data;
    const Operand& x = a.in[0];
    if constexpr (K == kCopy) {
      if (x.dtype == od) {
        copy_bits(out, x.data, off[0], off[1], od);
      } else if (kFast && float_out && is_floating(x.dtype)) {
        store_float(out, od, off[0], load_float(x.data, x.dtype, off[1]));
      } else if (!float_out && !is_floating(x.dtype)) {
        store_int(out, od, off[0], load_int(x.data, x.dtype, off[1]));
      } else {
        store_double(out, od, off[0], load_double(x.data, x.dtype, off[1]));
      }
    } else if constexpr (K == kUnary) {
      if (float_out) {
        const float r = unary_float(op, load_float(x.data, x.dtype, off[1]));
        if (kFast) store_float(out, od, off[0], r); else store_double(out, od, off[0], r);
      } else {
        store_int(out, od, off[0], unary_int(op, load_int(x.data, x.dtype, off[1])));
      }
    } else if constexpr (K == kBinary) {
      const Operand& y = a.in[1];
      if (float_out) {
        const float r = binary_float(op, load_float(x.data, x.dtype, off[1]), load_float(y.data, y.dtype, off[2]));
        if (kFast) store_float(out, od, off[0], r); else store_double(out, od, off[0], r);
      } else {
        store_int(out, od, off[0], binary_int(op, load_int(x.data, x.dtype, off[1]), load_int(y.data, y.dtype, off[2])));
      }
    } else if constexpr (K == kCompare) {
      const Operand& y = a.in[1];
      const bool r = compare(op, load_double(x.data, x.dtype, off[1]), load_double(y.data, y.dtype, off[2]));
      static_cast<uint8_t*>(out)[off[0]] = r ? 1 : 0;
    } else {
      const bool c = load_double(x.data, x.dtype, off[1]) != 0.0;
      const Operand& v = c ? a.in[1] : a.in[2];
      const int64_t vo = c ? off[2] : off[3];
      if (float_out) {
        store_double(out, od, off[0], load_double(v.data, v.dtype, vo));
      } else {
        store_int(out, od, off[0], load_int(v.data, v.dtype, vo));
      }
    }
  }
}

__global__ void binary_f32_kernel(int op, const float* a, const float* b, float* out, int64_t n);

// Every operand f32 with the output's unit stride (a residual add): no index arithmetic.
bool contiguous_f32(const Elementwise& a, int inputs) {
  if (a.rank != 1 || a.out.dtype != kF32 || a.out.strides[0] != 1) return false;
  for (int k = 0; k < inputs; ++k)
    if (a.in[k].dtype != kF32 || a.in[k].strides[0] != 1) return false;
  return true;
}

template <int K>
cudaError_t launch(const Elementwise& a, int op, cudaStream_t stream) {
  if (a.numel <= 0) return cudaSuccess;
  const bool fast = cuda_fast_elementwise();
  if (fast && K == kBinary && op <= 3 && contiguous_f32(a, 2)) {
    binary_f32_kernel<<<grid_for(a.numel, kThreads), kThreads, 0, stream>>>(
        op, static_cast<const float*>(a.in[0].data), static_cast<const float*>(a.in[1].data),
        static_cast<float*>(a.out.data), a.numel);
  } else if (fast && a.numel <= int64_t{0xffffffff}) {
    elementwise_kernel<K, uint32_t><<<grid_for(a.numel, kThreads), kThreads, 0, stream>>>(a, op);
  } else {
    elementwise_kernel<K, int64_t><<<grid_for(a.numel, kThreads), kThreads, 0, stream>>>(a, op);
  }
  return cudaGetLastError();
}

__global__ void fill_kernel(void* data, int dt, int64_t n, double value) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    store_double(data, dt, i, value);
}

__global__ void gather_rows_kernel(const uint8_t* src, int64_t row_bytes, const int64_t* ids, int64_t count,
                                   uint8_t* out) {
  const int64_t total = row_bytes * count;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t r = i / row_bytes, b = i % row_bytes;
    out[i] = src[ids[r] * row_bytes + b];
  }
}

__global__ void gather_rows_words_kernel(const uint32_t* src, int64_t row_words, const int64_t* ids,
                                         int64_t count, uint32_t* out) {
  const int64_t total = row_words * count;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t r = i / row_words, w = i % row_words;
    out[i] = src[ids[r] * row_words + w];
  }
}

__global__ void binary_f32_kernel(int op, const float* a, const float* b, float* out, int64_t n) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    out[i] = binary_float(op, a[i], b[i]);
}

__global__ void add_bias_kernel(float* y, int64_t rows, int64_t n, const float* bias) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < rows * n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    y[i] += bias[i % n];
}

// Row r of x [rows, cols] (row stride ldx) to out [rows, cols] contiguous bf16, rounded as
// float_to_bf16 rounds: blockIdx.y walks rows, threads 4 columns each (16-byte loads where
// `vec`: cols and ldx multiples of 4, x 16-byte aligned; out 8-byte aligned then too).
__global__ void rows_to_bf16_kernel(const float* x, int64_t ldx, int64_t rows, int64_t cols, uint16_t* out, bool vec) {
  for (int64_t r = blockIdx.y; r < rows; r += gridDim.y) {
    const float* xr = x + r * ldx;
    uint16_t* o = out + r * cols;
    for (int64_t c = 4 * (blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x); c < cols;
         c += 4 * static_cast<int64_t>(gridDim.x) * blockDim.x) {
      if (vec) {
        const float4 v = *reinterpret_cast<const float4*>(xr + c);
        uint2 p;
        p.x = float_to_bf16(v.x) | static_cast<uint32_t>(float_to_bf16(v.y)) << 16;
        p.y = float_to_bf16(v.z) | static_cast<uint32_t>(float_to_bf16(v.w)) << 16;
        *reinterpret_cast<uint2*>(o + c) = p;
      } else {
        for (int64_t t = c; t < c + 4 && t < cols; ++t) o[t] = float_to_bf16(xr[t]);
      }
    }
  }
}

__global__ void activation_mul_kernel(int act, const float* gate, const float* up, float* out, int64_t n) {
  await_inputs();
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    out[i] = activation(act, gate[i]) * up[i];
}

// One block: each thread scans a strided share, then a tree merge. NaNs never win; ties
// go to the lower index; a NaN at x[0] gives 0 (std::max_element keeps x[0] then).
__global__ void argmax_kernel(const float* x, int64_t n, int64_t* result) {
  __shared__ float best_v[1024];
  __shared__ int64_t best_i[1024];
  float bv = 0.0f;
  int64_t bi = -1;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
    const float v = x[i];
    if (isnan(v)) continue;
    if (bi < 0 || v > bv) bv = v, bi = i;
  }
  best_v[threadIdx.x] = bv;
  best_i[threadIdx.x] = bi;
  __syncthreads();
  for (unsigned s = blockDim.x / 2; s > 0; s >>= 1) {
    if (threadIdx.x < s) {
      const float ov = best_v[threadIdx.x + s];
      const int64_t oi = best_i[threadIdx.x + s];
      const int64_t mi = best_i[threadIdx.x];
      if (oi >= 0 && (mi < 0 || ov > best_v[threadIdx.x] || (ov == best_v[threadIdx.x] && oi < mi))) {
        best_v[threadIdx.x] = ov;
        best_i[threadIdx.x] = oi;
      }
    }
    __syncthreads();
  }
  if (threadIdx.x == 0) *result = isnan(x[0]) || best_i[0] < 0 ? 0 : best_i[0];
}

}  // namespace

cudaError_t launch_copy(const Elementwise& a, cudaStream_t s) { return launch<kCopy>(a, 0, s); }
cudaError_t launch_unary(int op, const Elementwise& a, cudaStream_t s) { return launch<kUnary>(a, op, s); }
cudaError_t launch_binary(int op, const Elementwise& a, cudaStream_t s) { return launch<kBinary>(a, op, s); }
cudaError_t launch_compare(int op, const Elementwise& a, cudaStream_t s) { return launch<kCompare>(a, op, s); }
cudaError_t launch_where(const Elementwise& a, cudaStream_t s) { return launch<kWhere>(a, 0, s); }

cudaError_t launch_fill(void* data, int dtype, int64_t n, double value, cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  fill_kernel<<<grid_for(n, kThreads), kThreads, 0, stream>>>(data, dtype, n, value);
  return cudaGetLastError();
}

cudaError_t launch_gather_rows(const void* src, int64_t row_bytes, const int64_t* ids, int64_t count, void* out,
                               cudaStream_t stream) {
  if (count <= 0 || row_bytes <= 0) return cudaSuccess;
  const bool words = row_bytes % 4 == 0 && reinterpret_cast<uintptr_t>(src) % 4 == 0 &&
                     reinterpret_cast<uintptr_t>(out) % 4 == 0;
  if (words) {
    gather_rows_words_kernel<<<grid_for(row_bytes / 4 * count, kThreads), kThreads, 0, stream>>>(
        static_cast<const uint32_t*>(src), row_bytes / 4, ids, count, static_cast<uint32_t*>(out));
  } else {
    gather_rows_kernel<<<grid_for(row_bytes * count, kThreads), kThreads, 0, stream>>>(
        static_cast<const uint8_t*>(src), row_bytes, ids, count, static_cast<uint8_t*>(out));
  }
  return cudaGetLastError();
}

cudaError_t launch_rows_to_bf16(const float* x, int64_t ldx, int64_t rows, int64_t cols, void* out,
                                cudaStream_t stream) {
  if (rows <= 0 || cols <= 0) return cudaSuccess;
  const bool vec = cols % 4 == 0 && ldx % 4 == 0 && reinterpret_cast<uintptr_t>(x) % 16 == 0 &&
                   reinterpret_cast<uintptr_t>(out) % 8 == 0;
  const int64_t chunks = (cols + 3) / 4;
  const dim3 grid(static_cast<unsigned>(std::min<int64_t>((chunks + kThreads - 1) / kThreads, 1024)),
                  static_cast<unsigned>(std::min<int64_t>(rows, 65535)));
  rows_to_bf16_kernel<<<grid, kThreads, 0, stream>>>(x, ldx, rows, cols, static_cast<uint16_t*>(out), vec);
  return cudaGetLastError();
}

cudaError_t launch_binary_f32(int op, const float* a, const float* b, float* out, int64_t n, cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  binary_f32_kernel<<<grid_for(n, kThreads), kThreads, 0, stream>>>(op, a, b, out, n);
  return cudaGetLastError();
}

cudaError_t launch_add_bias(float* y, int64_t rows, int64_t n, const float* bias, cudaStream_t stream) {
  if (rows <= 0 || n <= 0) return cudaSuccess;
  add_bias_kernel<<<grid_for(rows * n, kThreads), kThreads, 0, stream>>>(y, rows, n, bias);
  return cudaGetLastError();
}

cudaError_t launch_activation_mul(int act, const float* gate, const float* up, float* out, int64_t n,
                                  cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  return launch_early(activation_mul_kernel, grid_for(n, kThreads), kThreads, 0, stream, act, gate, up, out, n);
}

cudaError_t launch_argmax_f32(const float* x, int64_t n, int64_t* result, cudaStream_t stream) {
  argmax_kernel<<<1, 1024, 0, stream>>>(x, n, result);
  return cudaGetLastError();
}

}  // namespace lmx::cuda::detail
