// Vectorized matvec kernels for decode steps (m <= 8 rows of x): y[i, j] = x[i, :] . W[j, :]
// with W dense f16 / bf16 or MLX-quantized with 4 or 8 bits. Memory-bound: W is read once
// in 16-byte chunks (8 halves, or 128 / bits quantized values of one group), kUnroll chunks
// per lane in flight before the first is used, with loads that skip L1 so that x (small,
// f32, read by every row) stays there. L lanes share a row (L = 8 or 16 for short
// quantized rows, so that each lane still has kUnroll chunks in flight), and one launch
// serves up to kMaxMatvecTargets matrices over the same x (q / k / v, gate / up). The
// generic kernels of matmul_kernels.cu serve every other layout.
#include "lmx/base/env_switch.h"
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <cstdlib>
#include <type_traits>

#include "lmx/backend/cuda/dependent_launch.cuh"
#include "lmx/backend/cuda/device_values.cuh"
#include "lmx/backend/cuda/matvec_kernels.h"
#include "lmx/backend/cuda/quant_matvec_mma.h"
#include "lmx/backend/cuda/quant_mma_fragments.cuh"
#include "lmx/backend/cuda/x_prologue.cuh"

namespace lmx::cuda::detail {
namespace {

constexpr int kWarps = 4;    // per block
constexpr int kUnroll = 8;   // 16-byte chunks per lane in flight

// A weight chunk that only this kernel reads once: no L1 allocation.
__device__ __forceinline__ uint4 load_streaming(const uint4* p) {
  uint4 r;
  asm("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
      : "=r"(r.x), "=r"(r.y), "=r"(r.z), "=r"(r.w)
      : "l"(p));
  return r;
}

// 4 x values from global memory through the read-only path, or from shared memory (kShared:
// x made by the input prologue).
template <bool kShared>
__device__ __forceinline__ float4 load_x4(const float* p) {
  if constexpr (kShared) {
    return *reinterpret_cast<const float4*>(p);
  } else {
    return __ldg(reinterpret_cast<const float4*>(p));
  }
}

// Sum over 8 consecutive x values starting at xp (16-byte aligned) times w.
template <bool kShared>
__device__ __forceinline__ float dot8(const float* xp, const float (&w)[8]) {
  const float4 a = load_x4<kShared>(xp), b = load_x4<kShared>(xp + 4);
  return a.x * w[0] + a.y * w[1] + a.z * w[2] + a.w * w[3] + b.x * w[4] + b.y * w[5] + b.z * w[6] + b.w * w[7];
}

// One 16-byte chunk of W with what it needs besides (the group's scale and bias).
struct Chunk {
  uint4 v;
  float scale, bias;
};

// Dense f16 / bf16 rows: 8 values per chunk.
template <int kDtype>
struct DenseFormat {
  using Matrix = Dense;
  static constexpr int kValues = 8;
  __device__ static const uint4* row(const Dense& w, int64_t j) {
    return reinterpret_cast<const uint4*>(w.w + j * w.ld);
  }
  __device__ static int group_shift(const Dense&) { return 0; }
  __device__ static Chunk load(const Dense&, const uint4* row, int64_t, int64_t c, int) {
    return {load_streaming(row + c), 0.0f, 0.0f};
  }
  template <int M, bool kShared>
  __device__ static void accumulate(const Chunk& ch, const float* x, int64_t ldx, int64_t c, float (&acc)[M]) {
    const uint32_t words[4] = {ch.v.x, ch.v.y, ch.v.z, ch.v.w};
    float w[8];
#pragma unroll
    for (int t = 0; t < 4; ++t) {
      const uint16_t lo = static_cast<uint16_t>(words[t] & 0xffffu), hi = static_cast<uint16_t>(words[t] >> 16);
      if constexpr (kDtype == kBF16) {
        w[2 * t] = bf16_to_float(lo), w[2 * t + 1] = bf16_to_float(hi);
      } else {
        w[2 * t] = f16_to_float(lo), w[2 * t + 1] = f16_to_float(hi);
      }
    }
#pragma unroll
    for (int i = 0; i < M; ++i) acc[i] += dot8<kShared>(x + i * ldx + c * 8, w);
  }
};

__device__ __forceinline__ float load_scale(const void* p, int dt, int64_t i) {
  if (dt == kBF16) return bf16_to_float(__ldg(static_cast<const uint16_t*>(p) + i));
  if (dt == kF16) return f16_to_float(__ldg(static_cast<const uint16_t*>(p) + i));
  return load_float(p, dt, i);
}

// 2^23 + q in a float's bits (q < 2^8 in the low byte): minus 2^23 it is q exactly, a
// byte permute and a full-rate add where an int-to-float conversion runs at a quarter of
// the rate (the quantized matvecs are bound by instructions, not bytes).
__device__ __forceinline__ float byte_value(uint32_t w, int byte) {
  return __uint_as_float(__byte_perm(w, 0x4B000000u, 0x7440u | static_cast<unsigned>(byte))) - 8388608.0f;
}

// MLX affine rows of kBits: a chunk holds V = 128 / kBits values of one group (the
// launcher checks that group_size / V is a power of two), sum_t (scale * q_t + bias) * x_t
// = scale * sum_t q_t x_t + bias * sum_t x_t.
template <int kBits>
struct QuantFormat {
  using Matrix = Quant;
  static constexpr int kValues = 128 / kBits;
  __device__ static int group_shift(const Quant& q) { return __ffs(q.group_size / kValues) - 1; }
  __device__ static const uint4* row(const Quant& q, int64_t j) {
    return reinterpret_cast<const uint4*>(q.w + j * q.w_stride);
  }
  __device__ static Chunk load(const Quant& q, const uint4* row, int64_t j, int64_t c, int shift) {
    const int64_t s = j * q.s_stride + (c >> shift);
    return {load_streaming(row + c), load_scale(q.scales, q.scale_dtype, s), load_scale(q.biases, q.scale_dtype, s)};
  }
  template <int M, bool kShared>
  __device__ static void accumulate(const Chunk& ch, const float* x, int64_t ldx, int64_t c, float (&acc)[M]) {
    const uint32_t words[4] = {ch.v.x, ch.v.y, ch.v.z, ch.v.w};
    float q[kValues];
#pragma unroll
    for (int t = 0; t < 4; ++t) {
      if constexpr (kBits == 8) {
#pragma unroll
        for (int e = 0; e < 4; ++e) q[4 * t + e] = byte_value(words[t], e);
      } else {  // value 2e in the low nibble of byte e, 2e + 1 in the high one
        const uint32_t lo = words[t] & 0x0F0F0F0Fu, hi = (words[t] >> 4) & 0x0F0F0F0Fu;
#pragma unroll
        for (int e = 0; e < 4; ++e) q[8 * t + 2 * e] = byte_value(lo, e), q[8 * t + 2 * e + 1] = byte_value(hi, e);
      }
    }
#pragma unroll
    for (int i = 0; i < M; ++i) {
      const float* xp = x + i * ldx + c * kValues;
      float qx = 0.0f, sx = 0.0f;
#pragma unroll
      for (int v = 0; v < kValues / 4; ++v) {
        const float4 a = load_x4<kShared>(xp + 4 * v);
        qx += a.x * q[4 * v] + a.y * q[4 * v + 1] + a.z * q[4 * v + 2] + a.w * q[4 * v + 3];
        sx += (a.x + a.y) + (a.z + a.w);
      }
      acc[i] += ch.scale * qx + ch.bias * sx;
    }
  }
};

// Block b's rows of matvec_kernel (x in shared memory where kShared).
template <class Format, int L, int M, bool kShared>
__device__ __forceinline__ void matvec_block(const float* __restrict__ x, int64_t ldx,
                                             const MatvecTargets<typename Format::Matrix>& targets, unsigned b) {
  int t = 0;
  while (t + 1 < targets.count && b >= targets.first_block[t + 1]) ++t;
  const auto& w = targets.q[t];
  constexpr int kRowsPerWarp = 32 / L;
  const int lane = threadIdx.x % 32, sub = lane % L;
  const int64_t j = static_cast<int64_t>(b - targets.first_block[t]) * (kWarps * kRowsPerWarp) +
                    (threadIdx.x / 32) * kRowsPerWarp + lane / L;
  if (j - lane / L >= w.n) return;  // the warp's first row is past the end: the whole warp
  const int64_t jr = j < w.n ? j : w.n - 1;  // lanes past the end read a real row, store nothing
  const uint4* row = Format::row(w, jr);
  const int64_t chunks = w.k / Format::kValues;
  const int shift = Format::group_shift(w);
  float acc[M] = {};
  for (int64_t c0 = sub; c0 < chunks; c0 += L * kUnroll) {
    Chunk ch[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int64_t c = c0 + u * L;
      if (c < chunks) ch[u] = Format::load(w, row, jr, c, shift);
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int64_t c = c0 + u * L;
      if (c < chunks) Format::template accumulate<M, kShared>(ch[u], x, ldx, c, acc);
    }
  }
#pragma unroll
  for (int i = 0; i < M; ++i) {
#pragma unroll
    for (int o = L / 2; o > 0; o >>= 1) acc[i] += __shfl_xor_sync(0xffffffffu, acc[i], o);
  }
  if (sub == 0 && j < w.n) {
    float* y = targets.y[t];
    const int64_t ldy = targets.ldy[t];
#pragma unroll
    for (int i = 0; i < M; ++i) y[i * ldy + j] = acc[i];
  }
}

// L lanes per row of W, 32 / L rows per warp, kWarps warps per block; block b works on
// the target whose first_block range holds it. kPro (one row of x): each block first makes
// x through the input prologue `pro` into shared memory, then takes blocks b = blockIdx.x,
// blockIdx.x + gridDim.x, ... (fewer blocks than rows need, so fewer prologues).
template <class Format, int L, int M, bool kPro>
__global__ void __launch_bounds__(kWarps * 32)
    matvec_kernel(const float* __restrict__ x, int64_t ldx, MatvecTargets<typename Format::Matrix> targets,
                  XPrologue pro) {
  await_inputs();
  const float* xv = x;
  if constexpr (kPro) {
    extern __shared__ __align__(16) float xs[];
    __shared__ float red[32];
    prologue_to_shared(x, targets.q[0].k, pro, xs, red);
    xv = xs;
  }
  const unsigned blocks = kPro ? targets.first_block[targets.count] : gridDim.x;
  for (unsigned b = blockIdx.x; b < blocks; b += gridDim.x) matvec_block<Format, L, M, kPro>(xv, ldx, targets, b);
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

// Lanes per row: a whole warp for rows of >= 32 * kUnroll chunks, else fewer so that
// each lane keeps kUnroll chunks in flight (one x row only; more rows of x keep 32).
// LMX_CUDA_MATVEC_LANES=8|16|32 forces the lanes of one-row launches (to measure what
// the choice costs; cuda_matvec_bench).
int lanes_per_row(int64_t chunks, int64_t m) {
  static const int forced = [] {
    const char* env = std::getenv("LMX_CUDA_MATVEC_LANES");
    const int v = env ? std::atoi(env) : 0;
    return v == 8 || v == 16 || v == 32 ? v : 0;
  }();
  if (m > 1) return 32;
  if (forced) return forced;
  if (chunks >= 32 * kUnroll) return 32;
  return chunks >= 16 * kUnroll ? 16 : 8;
}

// Shared memory of x made by the input prologue: up to this many floats.
constexpr int64_t kMaxPrologueX = 48 * 1024;

// One row through the input prologue `pro` (m == 1, the launcher checked k): grid of at
// most LMX_CUDA_PROLOGUE_BLOCKS blocks an SM (default 4), each making x once.
template <class Format, int L, class Matrix>
cudaError_t launch_prologue(const float* x, MatvecTargets<Matrix>& t, const XPrologue& pro, cudaStream_t s) {
  static const int per_sm = [] {
    const char* env = std::getenv("LMX_CUDA_PROLOGUE_BLOCKS");
    const int v = env ? std::atoi(env) : 0;
    return v > 0 ? v : 4;
  }();
  auto* kernel = matvec_kernel<Format, L, 1, true>;
  static const cudaError_t attr = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                                       static_cast<int>(kMaxPrologueX * 4));
  if (attr != cudaSuccess) return attr;
  const unsigned blocks = t.first_block[t.count];
  const int64_t cap = int64_t{per_sm} * std::max(qmma::device_value(cudaDevAttrMultiProcessorCount), 1);
  const dim3 grid(static_cast<unsigned>(std::min<int64_t>(blocks, cap)));
  return launch_early(kernel, grid, kWarps * 32, static_cast<size_t>(t.q[0].k) * 4, s, x, int64_t{0}, t, pro);
}

// Fills first_block for `t` at L lanes per row and launches (through the input prologue
// where pro is set: m == 1).
template <class Format, class Matrix>
cudaError_t launch_targets(
    int64_t m, const float* x, int64_t ldx, MatvecTargets<Matrix>& t, const XPrologue* pro, cudaStream_t s) {
  const int L = lanes_per_row(t.q[0].k / Format::kValues, m);
  const int64_t rows_per_block = kWarps * (32 / L);
  t.first_block[0] = 0;
  for (int i = 0; i < t.count; ++i)
    t.first_block[i + 1] = t.first_block[i] + static_cast<unsigned>((t.q[i].n + rows_per_block - 1) / rows_per_block);
  if (pro) {
    return L == 8    ? launch_prologue<Format, 8>(x, t, *pro, s)
           : L == 16 ? launch_prologue<Format, 16>(x, t, *pro, s)
                     : launch_prologue<Format, 32>(x, t, *pro, s);
  }
  const dim3 grid(t.first_block[t.count]);
  cudaError_t launched = cudaSuccess;
  const XPrologue none{};
  const cudaError_t e = for_row_count(m, [&](auto rows) {
    constexpr int M = decltype(rows)::value;
    auto* kernel = matvec_kernel<Format, 32, M, false>;
    if constexpr (M == 1) {
      if (L == 8) kernel = matvec_kernel<Format, 8, 1, false>;
      if (L == 16) kernel = matvec_kernel<Format, 16, 1, false>;
    }
    launched = launch_early(kernel, grid, kWarps * 32, 0, s, x, ldx, t, none);
  });
  return launched != cudaSuccess ? launched : e;
}

// Whether an input prologue fits x of k values at m rows (x, up, residual and sum 16-byte
// aligned; k a multiple of 8 within the shared memory the kernels take).
bool prologue_fits(const XPrologue* pro, const float* x, int64_t k, int64_t m) {
  if (!pro) return true;
  return m == 1 && k % 8 == 0 && k <= kMaxPrologueX && aligned16(x) && aligned16(pro->up) &&
         aligned16(pro->residual) && aligned16(pro->sum) && (pro->kind != 1 || pro->up) &&
         (!pro->residual || pro->sum);
}


}  // namespace

bool launch_vector_matvec_dense(const float* x, int64_t ldx, const void* w, int w_dtype, int64_t n, int64_t k,
                                int64_t ld, float* y, int64_t ldy, int64_t m, cudaStream_t stream, cudaError_t* err) {
  const Dense d{static_cast<const uint16_t*>(w), w_dtype, n, k, ld};
  return launch_vector_matvec_dense_targets(x, ldx, &d, &y, &ldy, 1, m, stream, err);
}

bool launch_vector_matvec_dense_targets(const float* x,
                                        int64_t ldx,
                                        const Dense* w,
                                        float* const* y,
                                        const int64_t* ldy,
                                        int count,
                                        int64_t m,
                                        cudaStream_t stream,
                                        cudaError_t* err,
                                        const XPrologue* pro) {
  if (m < 1 || m > kMaxVectorMatvecRows || count < 1 || count > kMaxMatvecTargets) return false;
  if ((m > 1 && ldx % 4 != 0) || !aligned16(x) || !prologue_fits(pro, x, w[0].k, m)) return false;
  const int dtype = w[0].dtype;
  if (dtype != kBF16 && dtype != kF16) return false;
  DenseTargets t;
  t.count = count;
  for (int i = 0; i < count; ++i) {
    const Dense& d = w[i];
    if (d.dtype != dtype || d.k != w[0].k || d.k % 8 != 0 || d.ld % 8 != 0 || !aligned16(d.w) || d.n < 1) return false;
    t.q[i] = d, t.y[i] = y[i], t.ldy[i] = ldy[i];
  }
  *err = dtype == kBF16 ? launch_targets<DenseFormat<kBF16>>(m, x, ldx, t, pro, stream)
                        : launch_targets<DenseFormat<kF16>>(m, x, ldx, t, pro, stream);
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
                                        cudaError_t* err,
                                        const XPrologue* pro) {
  if (m < 1 || m > kMaxVectorMatvecRows || count < 1 || count > kMaxMatvecTargets) return false;
  if (m > 1 && ldx % 4 != 0) return false;
  if (!aligned16(x) || !prologue_fits(pro, x, q[0].k, m)) return false;
  const int bits = q[0].bits;
  if (bits != 4 && bits != 8) return false;
  const int values = 128 / bits;  // per 16-byte chunk
  QuantTargets t;
  t.count = count;
  for (int i = 0; i < count; ++i) {
    const Quant& w = q[i];
    const int chunks_per_group = w.group_size / values;
    if (w.mode != 0 || w.bits != bits || w.k != q[0].k || w.k % values != 0 || w.group_size % values != 0 ||
        chunks_per_group < 1 || (chunks_per_group & (chunks_per_group - 1)) != 0 ||
        w.w_stride % 4 != 0 || !aligned16(w.w) || w.n < 1) {
      return false;
    }
    t.q[i] = w, t.y[i] = y[i], t.ldy[i] = ldy[i];
  }
  if (m == 1 && cuda_quant_mma() && quant_mma_matvec_fits(q, count)) {
    *err = launch_quant_mma_matvec(x, t, stream, pro);
    return true;
  }
  *err = bits == 4 ? launch_targets<QuantFormat<4>>(m, x, ldx, t, pro, stream)
                   : launch_targets<QuantFormat<8>>(m, x, ldx, t, pro, stream);
  return true;
}

}  // namespace lmx::cuda::detail
