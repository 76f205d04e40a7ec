// Matmul kernels. Every product is C[i, j] = sum_p A[i, p] * B(p, j) with A f32 strided
// and B read through a loader (strided f32, a dense weight row W[j, p] of any float
// dtype, or an MLX-quantized weight dequantized on the fly), so one tiled kernel (64x64
// tiles, 4x4 outputs per thread) serves the GEMM, and one warp-per-column kernel serves
// the matvec of a decode step (m <= kMatvecRows: each weight read once for all rows).
// Accumulation is f32 throughout.
#include <math_constants.h>

#include <algorithm>
#include <type_traits>

#include "lmx/backend/cuda/device_values.cuh"
#include "lmx/backend/cuda/matmul_kernels.h"
#include "lmx/backend/cuda/matvec_kernels.h"

namespace lmx::cuda::detail {
namespace {

constexpr int kTile = 64, kTileK = 16;
constexpr int kMatvecRows = 8;

// kAlongP: B(p, j) is contiguous along p (a weight row), so a tile loads p fastest.
struct StridedB {
  static constexpr bool kAlongP = false;
  const float* b;
  int64_t rs, cs, bs;
  __device__ float operator()(int64_t batch, int64_t p, int64_t j) const { return b[batch * bs + p * rs + j * cs]; }
};

struct DenseRowsB {  // B(p, j) = W[j, p]
  static constexpr bool kAlongP = true;
  const void* w;
  int dtype;
  int64_t ld;
  __device__ float operator()(int64_t, int64_t p, int64_t j) const { return load_float(w, dtype, j * ld + p); }
};

// MLX's floating-point modes (lmx/backend/cpu/quant_fp.h has the codes' definitions):
// e2m1 and e4m3 elements, e8m0 (mxfp4 / mxfp8) or e4m3 (nvfp4) scales.
__device__ __forceinline__ float e2m1_value(uint32_t code) {
  const int e = (code >> 1) & 3, m = code & 1;
  const float mag = e == 0 ? 0.5f * static_cast<float>(m) : ldexpf(1.0f + 0.5f * static_cast<float>(m), e - 1);
  return (code & 8) ? -mag : mag;
}
__device__ __forceinline__ float e4m3_value(uint32_t code) {
  const int e = (code >> 3) & 15, m = code & 7;
  const float mag = e == 0 ? ldexpf(static_cast<float>(m), -9) : ldexpf(static_cast<float>(8 + m), e - 10);
  return (code & 0x80) ? -mag : mag;
}

// dequant(W)[j, p]: scale * q + bias (affine, as the CPU: multiply, then add), or scale *
// element (the floating-point modes; exact in f32).
__device__ __forceinline__ float quant_value(const Quant& q, const uint32_t* row, int64_t j, int64_t p) {
  const int64_t s = j * q.s_stride + p / q.group_size;
  const uint32_t code = mlx_q(row, q.bits, p);
  if (q.mode == 0) return affine(load_float(q.scales, q.scale_dtype, s), code, load_float(q.biases, q.scale_dtype, s));
  const uint32_t sc = static_cast<const uint8_t*>(q.scales)[s];
  const float scale = q.mode == 3 ? e4m3_value(sc) : ldexpf(1.0f, static_cast<int>(sc) - 127);
  return scale * (q.bits == 8 ? e4m3_value(code) : e2m1_value(code));
}

struct QuantRowsB {  // B(p, j) = dequant(W)[j, p]
  static constexpr bool kAlongP = true;
  Quant q;
  __device__ float operator()(int64_t, int64_t p, int64_t j) const { return quant_value(q, q.w + j * q.w_stride, j, p); }
};

struct Out {
  float* c;
  int64_t rs, cs, bs;
  float alpha, beta;
  __device__ void store(int64_t batch, int64_t i, int64_t j, float acc) const {
    float* p = c + batch * bs + i * rs + j * cs;
    *p = beta == 0.0f ? alpha * acc : alpha * acc + beta * *p;
  }
};

template <typename B>
__global__ void gemm_tiled_kernel(int64_t batch0, int64_t m, int64_t n, int64_t k, const float* a, int64_t a_rs,
                                  int64_t a_cs, int64_t a_bs, B bload, Out out) {
  __shared__ float as[kTileK][kTile + 1];
  __shared__ float bs[kTileK][kTile + 1];
  const int64_t batch = batch0 + blockIdx.z;
  const int64_t i0 = static_cast<int64_t>(blockIdx.y) * kTile, j0 = static_cast<int64_t>(blockIdx.x) * kTile;
  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
  float acc[4][4] = {};
  for (int64_t p0 = 0; p0 < k; p0 += kTileK) {
    for (int e = threadIdx.x; e < kTile * kTileK; e += 256) {
      // A tile: row r, column c (c fastest); B tile: along j, or along p for weight rows.
      const int r = e / kTileK, c = e % kTileK;
      const int64_t gi = i0 + r, gp = p0 + c;
      as[c][r] = gi < m && gp < k ? a[batch * a_bs + gi * a_rs + gp * a_cs] : 0.0f;
      const int bp = B::kAlongP ? e % kTileK : e / kTile, bj = B::kAlongP ? e / kTileK : e % kTile;
      const int64_t gbp = p0 + bp, gj = j0 + bj;
      bs[bp][bj] = gbp < k && gj < n ? bload(batch, gbp, gj) : 0.0f;
    }
    __syncthreads();
#pragma unroll
    for (int p = 0; p < kTileK; ++p) {
      float av[4], bv[4];
#pragma unroll
      for (int t = 0; t < 4; ++t) av[t] = as[p][ty + 16 * t], bv[t] = bs[p][tx + 16 * t];
#pragma unroll
      for (int u = 0; u < 4; ++u)
#pragma unroll
        for (int v = 0; v < 4; ++v) acc[u][v] += av[u] * bv[v];
    }
    __syncthreads();
  }
  for (int u = 0; u < 4; ++u) {
    for (int v = 0; v < 4; ++v) {
      const int64_t i = i0 + ty + 16 * u, j = j0 + tx + 16 * v;
      if (i < m && j < n) out.store(batch, i, j, acc[u][v]);
    }
  }
}

// One warp per output column j: lanes split p, each B(p, j) read once for all m rows.
template <typename B>
__global__ void matvec_kernel(int64_t batch0, int64_t m, int64_t n, int64_t k, const float* a, int64_t a_rs,
                              int64_t a_cs, int64_t a_bs, B bload, Out out) {
  const int64_t batch = batch0 + blockIdx.z;
  const int64_t j = static_cast<int64_t>(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (j >= n) return;
  float acc[kMatvecRows] = {};
  const float* ab = a + batch * a_bs;
  for (int64_t p = lane; p < k; p += 32) {
    const float bv = bload(batch, p, j);
#pragma unroll
    for (int i = 0; i < kMatvecRows; ++i)
      if (i < m) acc[i] += ab[i * a_rs + p * a_cs] * bv;
  }
#pragma unroll
  for (int i = 0; i < kMatvecRows; ++i) {
    for (int o = 16; o > 0; o >>= 1) acc[i] += __shfl_xor_sync(0xffffffffu, acc[i], o);
  }
  if (lane == 0)
    for (int i = 0; i < kMatvecRows && i < m; ++i) out.store(batch, i, j, acc[i]);
}

template <typename B>
cudaError_t launch_product(int64_t m, int64_t n, int64_t k, const float* a, int64_t a_rs, int64_t a_cs,
                           int64_t a_bs, const B& bload, const Out& out, int64_t batch, cudaStream_t stream) {
  if (m <= 0 || n <= 0 || batch <= 0) return cudaSuccess;
  for (int64_t b0 = 0; b0 < batch; b0 += 65535) {
    const unsigned nb = static_cast<unsigned>(batch - b0 < 65535 ? batch - b0 : 65535);
    if (m <= kMatvecRows) {
      const int warps = 8;
      dim3 grid(static_cast<unsigned>((n + warps - 1) / warps), 1, nb);
      matvec_kernel<B><<<grid, warps * 32, 0, stream>>>(b0, m, n, k, a, a_rs, a_cs, a_bs, bload, out);
    } else {
      dim3 grid(static_cast<unsigned>((n + kTile - 1) / kTile), static_cast<unsigned>((m + kTile - 1) / kTile), nb);
      gemm_tiled_kernel<B><<<grid, 256, 0, stream>>>(b0, m, n, k, a, a_rs, a_cs, a_bs, bload, out);
    }
    if (cudaError_t e = cudaGetLastError(); e != cudaSuccess) return e;
  }
  return cudaSuccess;
}

__global__ void dequantize_kernel(Quant q, int64_t r0, int64_t r1, float* out, int64_t ldo) {
  const int64_t total = (r1 - r0) * q.k;
  const QuantRowsB load{q};
  for (int64_t t = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; t < total;
       t += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t r = t / q.k, j = t % q.k;
    out[r * ldo + j] = load(0, j, r0 + r);
  }
}

// One thread per (row, group): a group of group_size * bits bits fills whole words.
__global__ void quantize_kernel(const float* w, int64_t n, int64_t k, int bits, int group_size, uint32_t* out_w,
                                void* out_scales, void* out_biases, int scale_dtype) {
  const int64_t groups = k / group_size, words = k * bits / 32;
  const float n_bins = static_cast<float>((1 << bits) - 1);
  for (int64_t t = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; t < n * groups;
       t += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t r = t / groups, g = t % groups;
    const float* src = w + r * k + g * group_size;
    float w_min = CUDART_INF_F, w_max = -CUDART_INF_F;
    for (int j = 0; j < group_size; ++j) w_max = fmaxf(w_max, src[j]), w_min = fminf(w_min, src[j]);
    const bool mask = fabsf(w_min) > fabsf(w_max);
    float scale = fmaxf(__fdiv_rn(w_max - w_min, n_bins), 1e-7f);
    scale = mask ? scale : -scale;
    const float edge = mask ? w_min : w_max;
    const float q0 = rintf(__fdiv_rn(edge, scale));
    float bias = 0.0f;
    if (q0 != 0.0f) {
      scale = __fdiv_rn(edge, q0);
      bias = edge;
    }
    uint32_t* row = out_w + r * words + g * group_size * bits / 32;
    const int group_words = group_size * bits / 32;
    for (int wd = 0; wd < group_words; ++wd) row[wd] = 0u;
    for (int j = 0; j < group_size; ++j) {
      float q = rintf(__fdiv_rn(src[j] - bias, scale));
      q = fminf(fmaxf(q, 0.0f), n_bins);
      const uint32_t qi = static_cast<uint32_t>(q);
      const int bit = j * bits, word = bit >> 5, shift = bit & 31;
      row[word] |= qi << shift;
      if (shift + bits > 32) row[word + 1] |= qi >> (32 - shift);
    }
    store_double(out_scales, scale_dtype, r * groups + g, scale);
    store_double(out_biases, scale_dtype, r * groups + g, bias);
  }
}

}  // namespace

cudaError_t launch_gemm_f32(const Gemm& g, cudaStream_t stream) {
  return launch_product(g.m, g.n, g.k, g.a, g.a_rs, g.a_cs, g.a_bs, StridedB{g.b, g.b_rs, g.b_cs, g.b_bs},
                        Out{g.c, g.c_rs, g.c_cs, g.c_bs, g.alpha, g.beta}, g.batch, stream);
}

cudaError_t launch_matmul_nt(const float* x, int64_t ldx, const void* w, int w_dtype, int64_t n, int64_t k,
                             int64_t ld, float* y, int64_t ldy, int64_t m, cudaStream_t stream) {
  if (cudaError_t e; launch_vector_matvec_dense(x, ldx, w, w_dtype, n, k, ld, y, ldy, m, stream, &e)) return e;
  return launch_product(m, n, k, x, ldx, 1, 0, DenseRowsB{w, w_dtype, ld}, Out{y, ldy, 1, 0, 1.0f, 0.0f}, 1,
                        stream);
}

cudaError_t launch_quantized_matmul(const float* x, int64_t ldx, const Quant& w, float* y, int64_t ldy, int64_t m,
                                    cudaStream_t stream) {
  if (cudaError_t e; launch_vector_matvec_quant(x, ldx, w, y, ldy, m, stream, &e)) return e;
  return launch_product(m, w.n, w.k, x, ldx, 1, 0, QuantRowsB{w}, Out{y, ldy, 1, 0, 1.0f, 0.0f}, 1, stream);
}

// Row r0 + blockIdx.y, columns over x: the same values as dequantize_kernel without its
// 64-bit division per element (the prefill's dequantize-then-SGEMM path).
// Out = float, or uint16_t for bf16 (the f32 value rounded to nearest even).
// With ids, row ids[blockIdx.y] instead (read on the device: a captured decode step's token).
template <class Out>
__global__ void dequantize_rows_kernel(Quant q, int64_t r0, Out* out, int64_t ldo, const int64_t* ids = nullptr) {
  const int64_t j = ids ? ids[blockIdx.y] : r0 + blockIdx.y;
  const uint32_t* row = q.w + j * q.w_stride;
  Out* o = out + static_cast<int64_t>(blockIdx.y) * ldo;
  const int k = static_cast<int>(q.k);
  for (int p = blockIdx.x * blockDim.x + threadIdx.x; p < k; p += gridDim.x * blockDim.x) {
    const float v = quant_value(q, row, j, p);
    if constexpr (std::is_same_v<Out, float>) {
      o[p] = v;
    } else {
      o[p] = float_to_bf16(v);
    }
  }
}

// Affine 4 / 8-bit rows to bf16 a packed word per thread (8 or 4 values, one 16 / 8-byte
// store), 32-bit indices and the group by a shift: dequantize_rows_kernel's values
// (affine(), then float_to_bf16) without its per-element 64-bit division.
template <int kBits>
__global__ void dequantize_bf16_words_kernel(Quant q, int64_t r0, uint16_t* out, int64_t ldo) {
  constexpr int kPer = 32 / kBits;
  constexpr uint32_t kMask = (1u << kBits) - 1u;
  const int64_t j = r0 + blockIdx.y;
  const uint32_t* row = q.w + j * q.w_stride;
  uint16_t* o = out + static_cast<int64_t>(blockIdx.y) * ldo;
  const int words = static_cast<int>(q.k * kBits / 32);
  const int group_shift = __ffs(q.group_size) - 1;
  const int64_t s0 = j * q.s_stride;
  for (int wd = blockIdx.x * blockDim.x + threadIdx.x; wd < words; wd += gridDim.x * blockDim.x) {
    const uint32_t word = row[wd];
    const int p0 = wd * kPer;
    const int64_t s = s0 + (p0 >> group_shift);
    const float scale = load_float(q.scales, q.scale_dtype, s), bias = load_float(q.biases, q.scale_dtype, s);
    uint32_t packed[kPer / 2];
#pragma unroll
    for (int e = 0; e < kPer; e += 2) {
      const uint32_t lo = float_to_bf16(affine(scale, (word >> (e * kBits)) & kMask, bias));
      const uint32_t hi = float_to_bf16(affine(scale, (word >> ((e + 1) * kBits)) & kMask, bias));
      packed[e / 2] = lo | (hi << 16);
    }
    if constexpr (kPer == 8) {
      *reinterpret_cast<uint4*>(o + p0) = make_uint4(packed[0], packed[1], packed[2], packed[3]);
    } else {
      *reinterpret_cast<uint2*>(o + p0) = make_uint2(packed[0], packed[1]);
    }
  }
}

dim3 dequantize_rows_grid(const Quant& w, int64_t r0, int64_t r1) {
  return {static_cast<unsigned>(std::min<int64_t>((w.k + 255) / 256, 64)), static_cast<unsigned>(r1 - r0)};
}

cudaError_t launch_dequantize(const Quant& w, int64_t r0, int64_t r1, float* out, int64_t ldo, cudaStream_t stream) {
  if (r1 <= r0 || w.k <= 0) return cudaSuccess;
  if (r1 - r0 <= 65535 && w.k < (int64_t{1} << 30)) {
    dequantize_rows_kernel<<<dequantize_rows_grid(w, r0, r1), 256, 0, stream>>>(w, r0, out, ldo);
    return cudaGetLastError();
  }
  dequantize_kernel<<<grid_for((r1 - r0) * w.k, 256), 256, 0, stream>>>(w, r0, r1, out, ldo);
  return cudaGetLastError();
}

cudaError_t launch_dequantize_gather(const Quant& w, const int64_t* ids, int64_t count, float* out, int64_t ldo,
                                     cudaStream_t stream) {
  if (count <= 0 || w.k <= 0) return cudaSuccess;
  if (count > 65535 || w.k >= (int64_t{1} << 30)) return cudaErrorInvalidValue;
  dequantize_rows_kernel<<<dequantize_rows_grid(w, 0, count), 256, 0, stream>>>(w, 0, out, ldo, ids);
  return cudaGetLastError();
}

bool launch_dequantize_bf16(const Quant& w, int64_t r0, int64_t r1, uint16_t* out, int64_t ldo, cudaStream_t stream,
                            cudaError_t* err) {
  if (r1 <= r0 || r1 - r0 > 65535 || w.k <= 0 || w.k >= (int64_t{1} << 30)) return false;
  const bool pow2_group = w.group_size >= 8 && (w.group_size & (w.group_size - 1)) == 0;
  if (w.mode == 0 && (w.bits == 4 || w.bits == 8) && pow2_group && w.k % w.group_size == 0 && ldo % 8 == 0 &&
      reinterpret_cast<uintptr_t>(out) % 16 == 0) {
    const int64_t words = w.k * w.bits / 32;
    const dim3 grid(static_cast<unsigned>(std::min<int64_t>((words + 127) / 128, 64)), static_cast<unsigned>(r1 - r0));
    if (w.bits == 4)
      dequantize_bf16_words_kernel<4><<<grid, 128, 0, stream>>>(w, r0, out, ldo);
    else
      dequantize_bf16_words_kernel<8><<<grid, 128, 0, stream>>>(w, r0, out, ldo);
    *err = cudaGetLastError();
    return true;
  }
  dequantize_rows_kernel<<<dequantize_rows_grid(w, r0, r1), 256, 0, stream>>>(w, r0, out, ldo);
  *err = cudaGetLastError();
  return true;
}

cudaError_t launch_quantize_affine(const float* w, int64_t n, int64_t k, int bits, int group_size, uint32_t* out_w,
                                   void* out_scales, void* out_biases, int scale_dtype, cudaStream_t stream) {
  const int64_t items = n * (k / group_size);
  if (items <= 0) return cudaSuccess;
  quantize_kernel<<<grid_for(items, 128), 128, 0, stream>>>(w, n, k, bits, group_size, out_w, out_scales,
                                                              out_biases, scale_dtype);
  return cudaGetLastError();
}

}  // namespace lmx::cuda::detail
