// Few-row GEMMs over MLX affine 4 / 8-bit W on the tensor cores (quant_gemm_few.h). The
// tensor-core matvec's scheme (quant_matvec_mma.cu) with the rows of x as the mma's B
// columns: a warp owns 16 rows of W and multiplies them by every row of x, 8 rows of x per
// m16n8k16 n-tile. A first kernel rounds x to bf16 once, in the order the fragments read it
// (Layout::order), with each group's sum of the rounded values (the bias term); x then
// stays in L1 / L2 while W streams past once. Where the tiles are fewer than the warps
// that fill the GPU, a tile's groups are split among warps and summed in shared memory.
#include <algorithm>

#include "lmx/backend/cuda/quant_gemm_few.h"
#include "lmx/backend/cuda/dependent_launch.cuh"
#include "lmx/backend/cuda/quant_mma_fragments.cuh"

namespace lmx::cuda::detail {
namespace {

using namespace qmma;

constexpr int kWarps = 8;
constexpr int kThreads = kWarps * 32;
constexpr int kTileRows = 16;

int64_t groups_of(const Quant& w) { return w.k / w.group_size; }
size_t xp_bytes(const Quant& w, int64_t m) { return static_cast<size_t>(m * w.k) * 2; }

// One thread per 8 values of a row of x: bf16 in fragment order, and the group sums (a
// group's kGroup / 8 threads are consecutive lanes of one warp).
template <int kBits, int kGroup>
__global__ void round_x_kernel(const float* __restrict__ x, int64_t ldx, int m, int k, uint16_t* __restrict__ xp,
                               float* __restrict__ gsum) {
  await_inputs();
  using L = Layout<kBits>;
  const int64_t blocks8 = static_cast<int64_t>(m) * (k / 8);
  const int64_t t = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  const bool live = t < blocks8;
  const int64_t r = live ? t / (k / 8) : 0, b = live ? t % (k / 8) : 0;
  uint16_t h[8];
  float s = 0.0f;
#pragma unroll
  for (int e = 0; e < 8; ++e) {
    const float v = live ? x[r * ldx + 8 * b + L::order(e)] : 0.0f;
    const __nv_bfloat16 rounded = __float2bfloat16_rn(v);
    h[e] = __bfloat16_as_ushort(rounded);
    s += __bfloat162float(rounded);
  }
#pragma unroll
  for (int o = 1; o < kGroup / 8; o <<= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
  if (!live) return;
  uint4 packed;
  packed.x = h[0] | (static_cast<uint32_t>(h[1]) << 16), packed.y = h[2] | (static_cast<uint32_t>(h[3]) << 16);
  packed.z = h[4] | (static_cast<uint32_t>(h[5]) << 16), packed.w = h[6] | (static_cast<uint32_t>(h[7]) << 16);
  *reinterpret_cast<uint4*>(xp + r * k + 8 * b) = packed;
  if (b % (kGroup / 8) == 0) gsum[r * (k / kGroup) + b / (kGroup / 8)] = s;
}

template <int kBits, int kGroup, int kNT, int kScale>
__global__ void __launch_bounds__(kThreads)
    quant_gemm_few_kernel(const uint16_t* __restrict__ xp, const float* __restrict__ gsum, int m,
                          const __grid_constant__ Quant w, float* __restrict__ y, int64_t ldy, unsigned tiles,
                          int split) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  await_inputs();
  using L = Layout<kBits>;
  using S = ScaleValue<kScale>;
  constexpr int kWd = kGroup / L::kPerWord / 4;       // words per lane per row per group
  constexpr int kGroupWords = kGroup * kBits / 32;  // words of a row's group
  __shared__ float red[kWarps][kTileRows][kNT * 8];
  const int k = static_cast<int>(w.k), ngroups = k / kGroup;
  const int warp = static_cast<int>(threadIdx.x) / 32, lane = static_cast<int>(threadIdx.x) % 32;
  const int g = lane / 4, c = lane % 4;
  const int tiles_per_iter = kWarps / split, part = warp % split;
  const unsigned iters = (tiles + tiles_per_iter - 1) / tiles_per_iter;
  const int gbeg = part * ngroups / split, gend = (part + 1) * ngroups / split;

  for (unsigned it = blockIdx.x; it < iters; it += gridDim.x) {
    const unsigned tile = it * tiles_per_iter + warp / split;
    const bool active = tile < tiles;
    const int64_t r0 = static_cast<int64_t>(tile) * kTileRows;
    const int64_t ra = r0 + g < w.n ? r0 + g : w.n - 1, rb = r0 + g + 8 < w.n ? r0 + g + 8 : w.n - 1;
    const uint32_t* wa = w.w + ra * w.w_stride + c * kWd;
    const uint32_t* wb = w.w + rb * w.w_stride + c * kWd;
    float acc[kNT][4];
#pragma unroll
    for (int nt = 0; nt < kNT; ++nt) acc[nt][0] = acc[nt][1] = acc[nt][2] = acc[nt][3] = 0.0f;
    if (active) {
      uint32_t va[kWd], vb[kWd];
      if (gbeg < gend) load_words<kWd>(wa + gbeg * kGroupWords, va), load_words<kWd>(wb + gbeg * kGroupWords, vb);
      for (int G = gbeg; G < gend; ++G) {
        uint32_t a[kWd], b[kWd];
#pragma unroll
        for (int i = 0; i < kWd; ++i) a[i] = va[i], b[i] = vb[i];
        if (G + 1 < gend) {  // the next group's words in flight while this one multiplies
          load_words<kWd>(wa + (G + 1) * kGroupWords, va);
          load_words<kWd>(wb + (G + 1) * kGroupWords, vb);
        }
        const float s_a = S::value(S::load(w.scales, ra * w.s_stride + G));
        const float s_b = S::value(S::load(w.scales, rb * w.s_stride + G));
        const float b_a = S::value(S::load(w.biases, ra * w.s_stride + G));
        const float b_b = S::value(S::load(w.biases, rb * w.s_stride + G));
#pragma unroll
        for (int nt = 0; nt < kNT; ++nt) {
          // B column g of this n-tile: row nt * 8 + g of x (rows past m repeat the last one).
          const int xr = min(nt * 8 + g, m - 1);
          const uint16_t* xg = xp + static_cast<int64_t>(xr) * k + G * kGroup + c * kWd * L::kPerWord;
          float d[4] = {}, dh[4] = {};
#pragma unroll
          for (int i = 0; i < kWd; ++i) {
            if constexpr (kBits == 4) {
              const uint4 bx = *reinterpret_cast<const uint4*>(xg + i * 8);
              mma(d, nibble_pair(a[i], 0), nibble_pair(b[i], 0), nibble_pair(a[i], 4), nibble_pair(b[i], 4), bx.x,
                  bx.y);
              mma(d, nibble_pair(a[i], 8), nibble_pair(b[i], 8), nibble_pair(a[i], 12), nibble_pair(b[i], 12), bx.z,
                  bx.w);
            } else {
              const uint2 bx = *reinterpret_cast<const uint2*>(xg + i * 4);
              mma(d, nibble_pair(a[i], 0), nibble_pair(b[i], 0), nibble_pair(a[i], 8), nibble_pair(b[i], 8), bx.x,
                  bx.y);
              mma(dh, nibble_pair(a[i], 4), nibble_pair(b[i], 4), nibble_pair(a[i], 12), nibble_pair(b[i], 12), bx.x,
                  bx.y);
            }
          }
          if constexpr (kBits == 8) {
#pragma unroll
            for (int e = 0; e < 4; ++e) d[e] = fmaf(16.0f, dh[e], d[e]);
          }
          // d: rows (g, g + 8) of the tile x x rows (2c, 2c + 1) of the n-tile.
          const int t0 = min(nt * 8 + 2 * c, m - 1), t1 = min(nt * 8 + 2 * c + 1, m - 1);
          const float x0 = gsum[t0 * ngroups + G], x1 = gsum[t1 * ngroups + G];
          acc[nt][0] = fmaf(b_a, x0, fmaf(s_a, d[0], acc[nt][0]));
          acc[nt][1] = fmaf(b_a, x1, fmaf(s_a, d[1], acc[nt][1]));
          acc[nt][2] = fmaf(b_b, x0, fmaf(s_b, d[2], acc[nt][2]));
          acc[nt][3] = fmaf(b_b, x1, fmaf(s_b, d[3], acc[nt][3]));
        }
      }
    }
    if (split > 1) {  // the tile's groups were split over `split` warps: sum them here
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

template <int kBits, int kGroup, int kNT, int kScale>
cudaError_t launch_tiles(const uint16_t* xp, const float* gsum, int m, const Quant& w, float* y, int64_t ldy,
                         cudaStream_t stream) {
  auto* kernel = quant_gemm_few_kernel<kBits, kGroup, kNT, kScale>;
  const unsigned tiles = static_cast<unsigned>((w.n + kTileRows - 1) / kTileRows);
  int per_sm = 0;
  if (cudaError_t e = cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, kThreads, 0); e != cudaSuccess)
    return e;
  const int64_t slots = int64_t{std::max(per_sm, 1)} * std::max(device_value(cudaDevAttrMultiProcessorCount), 1);
  // Warps per tile (the tile's groups split among them): the fewest that fill every slot,
  // keeping >= 2 groups per warp.
  const int ngroups = static_cast<int>(groups_of(w));
  int split = 1;
  while (split < kWarps && int64_t{tiles} * split < slots * kWarps && ngroups >= 4 * split) split *= 2;
  const int64_t iters = (tiles + kWarps / split - 1) / (kWarps / split);
  // The usual launch: a grid of the blocks the device holds at once (dependent_launch.cuh).
  kernel<<<static_cast<unsigned>(std::min(iters, slots)), kThreads, 0, stream>>>(xp, gsum, m, w, y, ldy, tiles, split);
  return cudaGetLastError();
}

template <int kBits, int kGroup, int kScale>
cudaError_t launch_scaled(const uint16_t* xp, const float* gsum, int m, const Quant& w, float* y, int64_t ldy,
                          cudaStream_t stream) {
  if (m <= 16) return launch_tiles<kBits, kGroup, 2, kScale>(xp, gsum, m, w, y, ldy, stream);
  if (m <= 32) return launch_tiles<kBits, kGroup, 4, kScale>(xp, gsum, m, w, y, ldy, stream);
  return launch_tiles<kBits, kGroup, 8, kScale>(xp, gsum, m, w, y, ldy, stream);
}

template <int kBits, int kGroup>
cudaError_t launch_grouped(const float* x, int64_t ldx, int m, const Quant& w, float* y, int64_t ldy, void* scratch,
                           cudaStream_t stream) {
  auto* xp = static_cast<uint16_t*>(scratch);
  auto* gsum = reinterpret_cast<float*>(static_cast<unsigned char*>(scratch) + (xp_bytes(w, m) + 15) / 16 * 16);
  const int k = static_cast<int>(w.k);
  const int64_t threads = static_cast<int64_t>(m) * (k / 8);
  if (cudaError_t e = launch_early(round_x_kernel<kBits, kGroup>, static_cast<unsigned>((threads + 255) / 256), 256, 0,
                                   stream, x, ldx, m, k, xp, gsum);
      e != cudaSuccess)
    return e;
  return w.scale_dtype == kBF16 ? launch_scaled<kBits, kGroup, kScaleBF16>(xp, gsum, m, w, y, ldy, stream)
                                : launch_scaled<kBits, kGroup, kScaleF16>(xp, gsum, m, w, y, ldy, stream);
}

template <int kBits>
cudaError_t launch_bits(const float* x, int64_t ldx, int m, const Quant& w, float* y, int64_t ldy, void* scratch,
                        cudaStream_t stream) {
  switch (w.group_size) {
    case 32: return launch_grouped<kBits, 32>(x, ldx, m, w, y, ldy, scratch, stream);
    case 64: return launch_grouped<kBits, 64>(x, ldx, m, w, y, ldy, scratch, stream);
    default: return launch_grouped<kBits, 128>(x, ldx, m, w, y, ldy, scratch, stream);
  }
}

}  // namespace

bool quant_gemm_few_fits(const Quant& w, int64_t m) {
  static const bool tensor_cores = device_value(cudaDevAttrComputeCapabilityMajor) >= 8;
  if (!tensor_cores || m < 2 || m > kFewRowsMax || w.mode != 0 || (w.bits != 4 && w.bits != 8)) return false;
  if (w.group_size != 32 && w.group_size != 64 && w.group_size != 128) return false;
  if ((w.scale_dtype != kBF16 && w.scale_dtype != kF16) || w.n < 1 || w.k <= 0 || w.k % w.group_size != 0 || w.k > (int64_t{1} << 24)) return false;
  const int64_t words = w.group_size * w.bits / 128;  // per lane per row per group: the loads' alignment
  return w.w_stride % words == 0 && (reinterpret_cast<uintptr_t>(w.w) & (std::min<uintptr_t>(16, 4 * words) - 1)) == 0;
}

size_t quant_gemm_few_scratch_bytes(const Quant& w, int64_t m) {
  return (xp_bytes(w, m) + 15) / 16 * 16 + static_cast<size_t>(m * groups_of(w)) * 4;
}

cudaError_t launch_quant_gemm_few(const float* x, int64_t ldx, int64_t m, const Quant& w, float* y, int64_t ldy,
                                  void* scratch, cudaStream_t stream) {
  const int rows = static_cast<int>(m);
  return w.bits == 4 ? launch_bits<4>(x, ldx, rows, w, y, ldy, scratch, stream)
                     : launch_bits<8>(x, ldx, rows, w, y, ldy, scratch, stream);
}

}  // namespace lmx::cuda::detail
