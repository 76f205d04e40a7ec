// Vectorized matvec kernels for decode steps (m <= 8 rows of x): y[i, j] = x[i, :] . W[j, :]
// with W dense f16 / bf16 or MLX-quantized with 4 or 8 bits. Memory-bound: each warp
// streams whole weight rows with 16-byte loads (8 halves, or 32 / 16 quantized values, one
// group's slice), converts in registers and keeps f32 sums for every x row; x is small and
// stays in L1/L2. The generic kernels of matmul_kernels.cu serve every other layout.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <type_traits>

#include "lmx/backend/cuda/device_values.cuh"
#include "lmx/backend/cuda/matvec_kernels.h"

namespace lmx::cuda::detail {
namespace {

constexpr int kWarps = 8;  // rows of W per block

__device__ __forceinline__ float warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

template <int kDtype>
__device__ __forceinline__ void unpack8(const uint4& v, float (&out)[8]) {
  const uint32_t words[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
  for (int t = 0; t < 4; ++t) {
    const uint16_t lo = static_cast<uint16_t>(words[t] & 0xffffu), hi = static_cast<uint16_t>(words[t] >> 16);
    if constexpr (kDtype == kBF16) {
      out[2 * t] = bf16_to_float(lo), out[2 * t + 1] = bf16_to_float(hi);
    } else {
      out[2 * t] = f16_to_float(lo), out[2 * t + 1] = f16_to_float(hi);
    }
  }
}

// Sum over 8 consecutive x values starting at xp (16-byte aligned) times w.
__device__ __forceinline__ float dot8(const float* xp, const float (&w)[8]) {
  const float4 a = *reinterpret_cast<const float4*>(xp), b = *reinterpret_cast<const float4*>(xp + 4);
  return a.x * w[0] + a.y * w[1] + a.z * w[2] + a.w * w[3] + b.x * w[4] + b.y * w[5] + b.z * w[6] + b.w * w[7];
}

template <int kDtype, int M>
__global__ void __launch_bounds__(kWarps * 32) matvec_dense16_kernel(const float* __restrict__ x, int64_t ldx,
                                                                      const uint16_t* __restrict__ w, int64_t n,
                                                                      int64_t k, int64_t ld, float* __restrict__ y,
                                                                      int64_t ldy) {
  const int lane = threadIdx.x % 32;
  const int64_t j = static_cast<int64_t>(blockIdx.x) * kWarps + threadIdx.x / 32;
  if (j >= n) return;
  const uint4* row = reinterpret_cast<const uint4*>(w + j * ld);
  const int64_t chunks = k / 8;
  float acc[M] = {};
#pragma unroll 4
  for (int64_t c = lane; c < chunks; c += 32) {
    float wf[8];
    unpack8<kDtype>(__ldg(row + c), wf);
#pragma unroll
    for (int i = 0; i < M; ++i) acc[i] += dot8(x + i * ldx + c * 8, wf);
  }
#pragma unroll
  for (int i = 0; i < M; ++i) {
    const float s = warp_sum(acc[i]);
    if (lane == 0) y[i * ldy + j] = s;
  }
}

// One 16-byte chunk of a quantized row holds V = 128 / bits values of one group (the
// launcher checks group_size % V == 0): sum_t (scale * q_t + bias) * x_t
// = scale * sum_t q_t x_t + bias * sum_t x_t.
//
// One launch serves every matrix of `targets` (a decode step's q / k / v or gate / up
// projections over one x): block b works on the target whose first_block range holds it.
template <int kBits, int M>
__global__ void __launch_bounds__(kWarps * 32)
    matvec_quant_kernel(const float* __restrict__ x, int64_t ldx, QuantTargets targets) {
  constexpr int V = 128 / kBits, kPerWord = 32 / kBits;
  constexpr uint32_t kMask = (1u << kBits) - 1u;
  int t = 0;
  while (t + 1 < targets.count && blockIdx.x >= targets.first_block[t + 1]) ++t;
  const Quant& q = targets.q[t];
  float* __restrict__ y = targets.y[t];
  const int64_t ldy = targets.ldy[t];
  const int lane = threadIdx.x % 32;
  const int64_t j =
      static_cast<int64_t>(blockIdx.x - targets.first_block[t]) * kWarps + threadIdx.x / 32;
  if (j >= q.n) return;
  const uint4* row = reinterpret_cast<const uint4*>(q.w + j * q.w_stride);
  const int64_t chunks = q.k / V, s_row = j * q.s_stride;
  float acc[M] = {};
#pragma unroll 2
  for (int64_t c = lane; c < chunks; c += 32) {
    const uint4 v = __ldg(row + c);
    const uint32_t words[4] = {v.x, v.y, v.z, v.w};
    const int64_t g = c * V / q.group_size;
    const float scale = load_float(q.scales, q.scale_dtype, s_row + g);
    const float bias = load_float(q.biases, q.scale_dtype, s_row + g);
#pragma unroll
    for (int i = 0; i < M; ++i) {
      const float* xp = x + i * ldx + c * V;
      float qx = 0.0f, sx = 0.0f;
#pragma unroll
      for (int t = 0; t < 4; ++t) {
#pragma unroll
        for (int h = 0; h < kPerWord; h += 4) {
          const float4 a = *reinterpret_cast<const float4*>(xp + t * kPerWord + h);
          const uint32_t wd = words[t] >> (h * kBits);
          qx += a.x * static_cast<float>(wd & kMask) + a.y * static_cast<float>((wd >> kBits) & kMask) +
                a.z * static_cast<float>((wd >> (2 * kBits)) & kMask) +
                a.w * static_cast<float>((wd >> (3 * kBits)) & kMask);
          sx += (a.x + a.y) + (a.z + a.w);
        }
      }
      acc[i] += scale * qx + bias * sx;
    }
  }
#pragma unroll
  for (int i = 0; i < M; ++i) {
    const float s = warp_sum(acc[i]);
    if (lane == 0) y[i * ldy + j] = s;
  }
}

bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

// Calls launch(std::integral_constant<int, M>()) for M = m, the kernels' row count.
template <class Launch>
cudaError_t for_row_count(int64_t m, Launch&& launch) {
  switch (m) {
    case 1: launch(std::integral_constant<int, 1>()); break;
    case 2: launch(std::integral_constant<int, 2>()); break;
    case 3: launch(std::integral_constant<int, 3>()); break;
    case 4: launch(std::integral_constant<int, 4>()); break;
    case 5: launch(std::integral_constant<int, 5>()); break;
    case 6: launch(std::integral_constant<int, 6>()); break;
    case 7: launch(std::integral_constant<int, 7>()); break;
    case 8: launch(std::integral_constant<int, 8>()); break;
    default: return cudaErrorInvalidValue;
  }
  return cudaGetLastError();
}

dim3 grid_for_rows(int64_t n) { return dim3(static_cast<unsigned>((n + kWarps - 1) / kWarps)); }

template <int kDtype>
cudaError_t launch_dense(int64_t m, const float* x, int64_t ldx, const uint16_t* w, int64_t n, int64_t k, int64_t ld,
                         float* y, int64_t ldy, cudaStream_t s) {
  return for_row_count(m, [&](auto rows) {
    matvec_dense16_kernel<kDtype, decltype(rows)::value><<<grid_for_rows(n), kWarps * 32, 0, s>>>(x, ldx, w, n, k, ld,
                                                                                                  y, ldy);
  });
}

template <int kBits>
cudaError_t launch_quant(
    int64_t m, const float* x, int64_t ldx, const QuantTargets& t, cudaStream_t s) {
  return for_row_count(m, [&](auto rows) {
    matvec_quant_kernel<kBits, decltype(rows)::value>
        <<<dim3(t.first_block[t.count]), kWarps * 32, 0, s>>>(x, ldx, t);
  });
}

}  // namespace

bool launch_vector_matvec_dense(const float* x, int64_t ldx, const void* w, int w_dtype, int64_t n, int64_t k,
                                int64_t ld, float* y, int64_t ldy, int64_t m, cudaStream_t stream, cudaError_t* err) {
  if (m < 1 || m > kMaxVectorMatvecRows || (w_dtype != kBF16 && w_dtype != kF16)) return false;
  if (k % 8 != 0 || ld % 8 != 0 || (m > 1 && ldx % 4 != 0) || !aligned16(w) || !aligned16(x)) return false;
  const auto* w16 = static_cast<const uint16_t*>(w);
  *err = w_dtype == kBF16 ? launch_dense<kBF16>(m, x, ldx, w16, n, k, ld, y, ldy, stream)
                          : launch_dense<kF16>(m, x, ldx, w16, n, k, ld, y, ldy, stream);
  return true;
}

bool launch_vector_matvec_quant(const float* x, int64_t ldx, const Quant& q, float* y, int64_t ldy, int64_t m,
                                cudaStream_t stream, cudaError_t* err) {
  return launch_vector_matvec_quant_targets(x, ldx, &q, &y, &ldy, 1, m, stream, err);
}

bool launch_vector_matvec_quant_targets(const float* x,
                                        int64_t ldx,
                                        const Quant* q,
                                        float* const* y,
                                        const int64_t* ldy,
                                        int count,
                                        int64_t m,
                                        cudaStream_t stream,
                                        cudaError_t* err) {
  if (m < 1 || m > kMaxVectorMatvecRows || count < 1 || count > kMaxMatvecTargets) return false;
  if (m > 1 && ldx % 4 != 0) return false;
  if (!aligned16(x)) return false;
  const int bits = q[0].bits;
  if (bits != 4 && bits != 8) return false;
  const int values = 128 / bits;  // per 16-byte chunk
  QuantTargets t;
  t.count = count;
  t.first_block[0] = 0;
  for (int i = 0; i < count; ++i) {
    const Quant& w = q[i];
    if (w.bits != bits || w.k != q[0].k || w.k % values != 0 || w.group_size % values != 0 ||
        w.w_stride % 4 != 0 || !aligned16(w.w)) {
      return false;
    }
    t.q[i] = w, t.y[i] = y[i], t.ldy[i] = ldy[i];
    t.first_block[i + 1] = t.first_block[i] + static_cast<unsigned>((w.n + kWarps - 1) / kWarps);
  }
  *err = bits == 4 ? launch_quant<4>(m, x, ldx, t, stream) : launch_quant<8>(m, x, ldx, t, stream);
  return true;
}

}  // namespace lmx::cuda::detail
