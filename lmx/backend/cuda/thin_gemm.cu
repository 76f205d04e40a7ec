#include "lmx/backend/cuda/thin_gemm.h"

#include <algorithm>

namespace lmx::cuda::detail {
namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
constexpr int kRowsPerWarp = 2;         // the row-major path: rows of A a warp walks per k tile
constexpr int kTile = 256;              // k values of B staged in shared memory at a time
constexpr int64_t kMinSplitK = 64;      // k values a split covers at least

// The product with n the thin side: A [m, k] is the wide operand, read once.
struct Thin {
  int64_t m, n, k;
  const float* a;
  int64_t a_rs, a_cs, a_bs;
  const float* b;
  int64_t b_rs, b_cs, b_bs;
  float* c;
  int64_t c_rs, c_cs, c_bs;
  float alpha, beta;
  int64_t k_per_split;
  int splits;
};

// m is the thin side: C^T = B^T A^T, the same product with the roles swapped.
Thin normalized(const Gemm& g) {
  if (g.n <= kThinMax) {
    return {g.m, g.n, g.k, g.a, g.a_rs, g.a_cs, g.a_bs, g.b, g.b_rs, g.b_cs, g.b_bs,
            g.c, g.c_rs, g.c_cs, g.c_bs, g.alpha, g.beta, 0, 1};
  }
  return {g.n, g.m, g.k, g.b, g.b_cs, g.b_rs, g.b_bs, g.a, g.a_cs, g.a_rs, g.a_bs,
          g.c, g.c_cs, g.c_rs, g.c_bs, g.alpha, g.beta, 0, 1};
}

bool row_major(const Thin& t) { return t.a_cs == 1; }
int64_t rows_per_block(const Thin& t) { return row_major(t) ? kWarps * kRowsPerWarp : kThreads; }

// Splits of k that give about four blocks per SM over the batch, each at least kMinSplitK long.
void plan(Thin& t, int64_t batch, int sm_count) {
  const int64_t row_blocks = (t.m + rows_per_block(t) - 1) / rows_per_block(t) * batch;
  const int64_t want = (4 * static_cast<int64_t>(std::max(sm_count, 1)) + row_blocks - 1) / row_blocks;
  const int64_t splits = std::max<int64_t>(1, std::min({want, t.k / kMinSplitK, int64_t{1024}}));
  const int64_t per = ((t.k + splits - 1) / splits + 31) / 32 * 32;
  t.k_per_split = per;
  t.splits = static_cast<int>((t.k + per - 1) / per);
}

// One block: rows_per_block rows of A (row-major: a warp per row, lanes along k; else a
// thread per row) against k values [split * k_per_split, ...) in tiles of kTile, B's tile
// in shared memory (row stride NT + 1 where lanes read different k rows: no bank conflicts).
template <int NT, bool kRowMajor>
__global__ void __launch_bounds__(kThreads) thin_gemm_kernel(Thin t, float* partial) {
  constexpr int kStride = kRowMajor ? NT + 1 : NT;
  __shared__ __align__(16) float bs[kTile * kStride];
  const int64_t batch = blockIdx.z;
  const float* A = t.a + batch * t.a_bs;
  const float* B = t.b + batch * t.b_bs;
  const int64_t k_begin = static_cast<int64_t>(blockIdx.y) * t.k_per_split;
  const int64_t k_end = k_begin + t.k_per_split < t.k ? k_begin + t.k_per_split : t.k;
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  constexpr int kRows = kRowMajor ? kRowsPerWarp : 1;
  int64_t rows[kRows];
#pragma unroll
  for (int r = 0; r < kRows; ++r) {
    rows[r] = kRowMajor ? (static_cast<int64_t>(blockIdx.x) * kWarps + warp) * kRowsPerWarp + r
                        : static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x;
  }
  float acc[kRows][NT];
#pragma unroll
  for (int r = 0; r < kRows; ++r)
#pragma unroll
    for (int j = 0; j < NT; ++j) acc[r][j] = 0.0f;

  for (int64_t k0 = k_begin; k0 < k_end; k0 += kTile) {
    const int kt = static_cast<int>(k_end - k0 < kTile ? k_end - k0 : kTile);
    // Neighbouring threads read neighbouring addresses: along k where B's rows are unit stride.
    for (int i = threadIdx.x; i < kt * NT; i += kThreads) {
      const int kk = t.b_rs == 1 ? i % kt : i / NT, j = t.b_rs == 1 ? i / kt : i % NT;
      bs[kk * kStride + j] = j < t.n ? B[(k0 + kk) * t.b_rs + j * t.b_cs] : 0.0f;
    }
    __syncthreads();
    if constexpr (kRowMajor) {
#pragma unroll
      for (int r = 0; r < kRows; ++r) {
        if (rows[r] >= t.m) continue;
        const float* a = A + rows[r] * t.a_rs + k0;
        for (int kk = lane; kk < kt; kk += 32) {
          const float x = a[kk];
#pragma unroll
          for (int j = 0; j < NT; ++j) acc[r][j] = fmaf(x, bs[kk * kStride + j], acc[r][j]);
        }
      }
    } else if (rows[0] < t.m) {
      const float* a = A + rows[0] + k0 * t.a_cs;
      for (int kk = 0; kk < kt; ++kk) {
        const float x = a[kk * t.a_cs];
        const float4* b4 = reinterpret_cast<const float4*>(bs + kk * kStride);
#pragma unroll
        for (int j = 0; j < NT / 4; ++j) {
          const float4 w = b4[j];
          acc[0][4 * j] = fmaf(x, w.x, acc[0][4 * j]);
          acc[0][4 * j + 1] = fmaf(x, w.y, acc[0][4 * j + 1]);
          acc[0][4 * j + 2] = fmaf(x, w.z, acc[0][4 * j + 2]);
          acc[0][4 * j + 3] = fmaf(x, w.w, acc[0][4 * j + 3]);
        }
      }
    }
    __syncthreads();
  }
  if constexpr (kRowMajor) {
#pragma unroll
    for (int r = 0; r < kRows; ++r)
#pragma unroll
      for (int j = 0; j < NT; ++j)
        for (int o = 16; o > 0; o /= 2) acc[r][j] += __shfl_xor_sync(0xffffffffu, acc[r][j], o);
    if (lane != 0) return;
  }
#pragma unroll
  for (int r = 0; r < kRows; ++r) {
    const int64_t row = rows[r];
    if (row >= t.m) continue;
#pragma unroll
    for (int j = 0; j < NT; ++j) {
      if (j >= t.n) break;
      if (t.splits > 1) {
        partial[((batch * t.splits + blockIdx.y) * t.m + row) * t.n + j] = acc[r][j];
      } else {
        float* c = t.c + batch * t.c_bs + row * t.c_rs + j * t.c_cs;
        *c = t.beta == 0.0f ? t.alpha * acc[r][j] : t.alpha * acc[r][j] + t.beta * *c;
      }
    }
  }
}

// C = alpha * (the splits' partial sums, added in split order) + beta * C.
__global__ void thin_gemm_sum_kernel(Thin t, const float* partial, int64_t total) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t j = i % t.n, row = (i / t.n) % t.m, batch = i / (t.n * t.m);
    float s = 0.0f;
    for (int p = 0; p < t.splits; ++p) s += partial[((batch * t.splits + p) * t.m + row) * t.n + j];
    float* c = t.c + batch * t.c_bs + row * t.c_rs + j * t.c_cs;
    *c = t.beta == 0.0f ? t.alpha * s : t.alpha * s + t.beta * *c;
  }
}

template <int NT>
void launch_kernel(const Thin& t, dim3 grid, float* scratch, cudaStream_t stream) {
  if (row_major(t)) {
    thin_gemm_kernel<NT, true><<<grid, kThreads, 0, stream>>>(t, scratch);
  } else {
    thin_gemm_kernel<NT, false><<<grid, kThreads, 0, stream>>>(t, scratch);
  }
}

}  // namespace

int64_t thin_gemm_scratch_floats(const Gemm& g, int sm_count) {
  if (g.m <= 0 || g.n <= 0 || g.k <= 0 || g.batch <= 0 || g.batch > 65535) return -1;
  if (g.n > kThinMax && g.m > kThinMax) return -1;
  Thin t = normalized(g);
  if (t.a_cs != 1 && t.a_rs != 1) return -1;
  plan(t, g.batch, sm_count);
  if (t.splits <= 1) return 0;
  return static_cast<int64_t>(t.splits) * g.batch * t.m * t.n;
}

cudaError_t launch_thin_gemm(const Gemm& g, int sm_count, float* scratch, cudaStream_t stream) {
  Thin t = normalized(g);
  plan(t, g.batch, sm_count);
  const dim3 grid(static_cast<unsigned>((t.m + rows_per_block(t) - 1) / rows_per_block(t)),
                  static_cast<unsigned>(t.splits), static_cast<unsigned>(g.batch));
  if (t.n <= 4) {
    launch_kernel<4>(t, grid, scratch, stream);
  } else if (t.n <= 8) {
    launch_kernel<8>(t, grid, scratch, stream);
  } else {
    launch_kernel<16>(t, grid, scratch, stream);
  }
  if (cudaError_t e = cudaGetLastError(); e != cudaSuccess || t.splits <= 1) return e;
  const int64_t total = g.batch * t.m * t.n;
  const unsigned blocks = static_cast<unsigned>(std::min<int64_t>((total + 255) / 256, 4096));
  thin_gemm_sum_kernel<<<blocks, 256, 0, stream>>>(t, scratch, total);
  return cudaGetLastError();
}

}  // namespace lmx::cuda::detail
