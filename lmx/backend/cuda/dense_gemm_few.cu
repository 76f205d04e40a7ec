// Few-row GEMMs over dense bf16 W on the tensor cores (dense_gemm_few.h). A warp owns 16
// rows of W (the m16n8k16 mma's A) and multiplies them by every row of x (its B columns, 8
// rows of x an n-tile). A dot product may visit k in any order as long as W and x agree,
// so each lane reads its W rows and its x row in the same 16-byte pieces: lane (g, c) of
// step s takes the kU pieces at k = s * 32kU + 8 (c kU + i); a piece's words 0..1 feed one
// mma as the fragment's k pairs (2c, 2c + 1) and (2c + 8, 2c + 9), words 2..3 the next.
// Where the tiles are fewer than the warps that fill the GPU, a tile's steps are split
// among warps and summed in shared memory.
#include <algorithm>

#include "lmx/backend/cuda/dense_gemm_few.h"
#include "lmx/backend/cuda/dependent_launch.cuh"
#include "lmx/backend/cuda/quant_mma_fragments.cuh"

namespace lmx::cuda::detail {
namespace {

using namespace qmma;

constexpr int kWarps = 8;
constexpr int kThreads = kWarps * 32;
constexpr int kTileRows = 16;

// The 8 bf16 values (4 words) of piece i of both W rows and the x row, into acc (row g /
// g + 8 of the tile x the n-tile's columns 2c, 2c + 1).
__device__ __forceinline__ void mma_piece(float (&acc)[4], const uint32_t* a, const uint32_t* b, uint4 x) {
  mma(acc, a[0], b[0], a[1], b[1], x.x, x.y);
  mma(acc, a[2], b[2], a[3], b[3], x.z, x.w);
}

template <int kNT, int kU>
__global__ void __launch_bounds__(kThreads)
    dense_gemm_few_kernel(const uint16_t* __restrict__ xb, int m, const __grid_constant__ Dense w,
                          float* __restrict__ y, int64_t ldy, unsigned tiles, int split) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  await_inputs();
  constexpr int kWords = 4 * kU;      // words a lane reads of a row in one step
  constexpr int kStepWords = 16 * kU;  // words of a row in one step (32 kU values)
  __shared__ float red[kWarps][kTileRows][kNT * 8];
  const int64_t k = w.k;
  const int warp = static_cast<int>(threadIdx.x) / 32, lane = static_cast<int>(threadIdx.x) % 32;
  const int g = lane / 4, c = lane % 4;
  const int tiles_per_iter = kWarps / split, part = warp % split;
  const unsigned iters = (tiles + tiles_per_iter - 1) / tiles_per_iter;
  const int64_t steps = k / (32 * kU);
  const int tail = static_cast<int>(k % (32 * kU)) / 32;  // 32-value pieces after the steps
  const int64_t sbeg = part * steps / split, send = (part + 1) * steps / split;
  const uint32_t* x32 = reinterpret_cast<const uint32_t*>(xb);
  const int64_t xrow_words = k / 2;

  for (unsigned it = blockIdx.x; it < iters; it += gridDim.x) {
    const unsigned tile = it * tiles_per_iter + warp / split;
    const bool active = tile < tiles;
    const int64_t r0 = static_cast<int64_t>(tile) * kTileRows;
    const int64_t ra = r0 + g < w.n ? r0 + g : w.n - 1, rb = r0 + g + 8 < w.n ? r0 + g + 8 : w.n - 1;
    const uint32_t* rowa = reinterpret_cast<const uint32_t*>(w.w + ra * w.ld);
    const uint32_t* rowb = reinterpret_cast<const uint32_t*>(w.w + rb * w.ld);
    float acc[kNT][4];
#pragma unroll
    for (int nt = 0; nt < kNT; ++nt) acc[nt][0] = acc[nt][1] = acc[nt][2] = acc[nt][3] = 0.0f;
    if (active) {
      const uint32_t* wa = rowa + c * kWords;
      const uint32_t* wb = rowb + c * kWords;
      uint32_t va[kWords], vb[kWords];
      if (sbeg < send) load_words<kWords>(wa + sbeg * kStepWords, va), load_words<kWords>(wb + sbeg * kStepWords, vb);
      for (int64_t s = sbeg; s < send; ++s) {
        uint32_t a[kWords], b[kWords];
#pragma unroll
        for (int i = 0; i < kWords; ++i) a[i] = va[i], b[i] = vb[i];
        if (s + 1 < send) {  // the next step's words in flight while this one multiplies
          load_words<kWords>(wa + (s + 1) * kStepWords, va);
          load_words<kWords>(wb + (s + 1) * kStepWords, vb);
        }
#pragma unroll
        for (int nt = 0; nt < kNT; ++nt) {
          const int xr = min(nt * 8 + g, m - 1);  // rows past m repeat the last one
          const uint4* xg = reinterpret_cast<const uint4*>(x32 + xr * xrow_words + s * kStepWords + c * kWords);
#pragma unroll
          for (int i = 0; i < kU; ++i) mma_piece(acc[nt], a + 4 * i, b + 4 * i, xg[i]);
        }
      }
      if (part == split - 1) {  // the pieces after the last whole step, one at a time
        for (int p = 0; p < tail; ++p) {
          const int64_t off = steps * kStepWords + p * 16 + c * 4;
          uint32_t a[4], b[4];
          load_words<4>(rowa + off, a), load_words<4>(rowb + off, b);
#pragma unroll
          for (int nt = 0; nt < kNT; ++nt) {
            const int xr = min(nt * 8 + g, m - 1);
            mma_piece(acc[nt], a, b, *reinterpret_cast<const uint4*>(x32 + xr * xrow_words + off));
          }
        }
      }
    }
    if (split > 1) {  // the tile's steps were split over `split` warps: sum them here
#pragma unroll
      for (int nt = 0; nt < kNT; ++nt) {
        red[warp][g][nt * 8 + 2 * c] = acc[nt][0], red[warp][g][nt * 8 + 2 * c + 1] = acc[nt][1];
        red[warp][g + 8][nt * 8 + 2 * c] = acc[nt][2], red[warp][g + 8][nt * 8 + 2 * c + 1] = acc[nt][3];
      }
      __syncthreads();
      if (active && part == 0) {
        for (int e = lane; e < kTileRows * m; e += 32) {
          const int row = e / m, t = e % m;
          float sum = 0.0f;
          for (int p = 0; p < split; ++p) sum += red[warp + p][row][t];
          if (r0 + row < w.n) y[t * ldy + r0 + row] = sum;
        }
      }
      __syncthreads();
    } else if (active) {
#pragma unroll
      for (int nt = 0; nt < kNT; ++nt) {
        const int t0 = nt * 8 + 2 * c;
        if (t0 < m) {
          if (r0 + g < w.n) y[t0 * ldy + r0 + g] = acc[nt][0];
          if (r0 + g + 8 < w.n) y[t0 * ldy + r0 + g + 8] = acc[nt][2];
        }
        if (t0 + 1 < m) {
          if (r0 + g < w.n) y[(t0 + 1) * ldy + r0 + g] = acc[nt][1];
          if (r0 + g + 8 < w.n) y[(t0 + 1) * ldy + r0 + g + 8] = acc[nt][3];
        }
      }
    }
  }
#else
  __trap();
#endif
}

template <int kNT, int kU>
cudaError_t launch_tiles(const uint16_t* xb, int m, const Dense& w, float* y, int64_t ldy, cudaStream_t stream) {
  auto* kernel = dense_gemm_few_kernel<kNT, kU>;
  const unsigned tiles = static_cast<unsigned>((w.n + kTileRows - 1) / kTileRows);
  int per_sm = 0;
  if (cudaError_t e = cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, kThreads, 0); e != cudaSuccess)
    return e;
  const int64_t slots = int64_t{std::max(per_sm, 1)} * std::max(device_value(cudaDevAttrMultiProcessorCount), 1);
  // Warps per tile (its steps split among them): the fewest that fill every slot, keeping
  // >= 2 steps per warp.
  const int64_t steps = w.k / (32 * kU);
  int split = 1;
  while (split < kWarps && int64_t{tiles} * split < slots * kWarps && steps >= 4 * split) split *= 2;
  const int64_t iters = (tiles + kWarps / split - 1) / (kWarps / split);
  // The usual launch: a grid of the blocks the device holds at once (dependent_launch.cuh).
  kernel<<<static_cast<unsigned>(std::min(iters, slots)), kThreads, 0, stream>>>(xb, m, w, y, ldy, tiles, split);
  return cudaGetLastError();
}

template <int kNT>
cudaError_t launch_rows(const uint16_t* xb, int m, const Dense& w, float* y, int64_t ldy, cudaStream_t stream) {
  // 64-byte pieces of a row per lane (256 bytes of a row per warp step) where k has them;
  // the widest n-tile count halves them to keep the registers of two steps in flight.
  if (kNT <= 4 && w.k >= 128 * 4) return launch_tiles<kNT, 4>(xb, m, w, y, ldy, stream);
  return launch_tiles<kNT, 2>(xb, m, w, y, ldy, stream);
}

}  // namespace

bool dense_gemm_few_fits(const Dense& w, int64_t m) {
  static const bool tensor_cores = device_value(cudaDevAttrComputeCapabilityMajor) >= 8;
  if (!tensor_cores || m < 2 || m > kDenseFewRowsMax || w.dtype != kBF16) return false;
  if (w.n < 1 || w.k < 32 || w.k % 32 != 0 || w.k > (int64_t{1} << 28) || w.ld % 8 != 0) return false;
  return (reinterpret_cast<uintptr_t>(w.w) & 15) == 0;
}

cudaError_t launch_dense_gemm_few(const uint16_t* xb, int64_t m, const Dense& w, float* y, int64_t ldy,
                                  cudaStream_t stream) {
  const int rows = static_cast<int>(m);
  if (m <= 16) return launch_rows<2>(xb, rows, w, y, ldy, stream);
  if (m <= 32) return launch_rows<4>(xb, rows, w, y, ldy, stream);
  return launch_rows<8>(xb, rows, w, y, ldy, stream);
}

}  // namespace lmx::cuda::detail
