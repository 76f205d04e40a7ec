// Decode matvecs (one row of x) over MLX affine 4 / 8-bit W on the tensor cores, with the
// products of f32 x (docs/performance.md, session 12, says why: the CUDA-core kernel of
// matvec_kernels.cu read 4 bytes of f32 x through L1 per weight value, 8x the weight's own
// bytes at 4 bits, and spent ~5 instructions per value besides; it ran at 12% of the copy
// bandwidth).
//
// y[j] = sum_G scale[j, G] * (sum_{p in G} q[j, p] x[p]) + bias[j, G] * (sum_{p in G} x[p]),
// the CPU's form. Per group, sum q x runs as bf16 mma.sync m16n8k16 with f32 accumulation:
// A = the codes q (integers < 256, exact in bf16: 4-bit codes directly, 8-bit codes as two
// nibbles, lo + 16 hi), B = x split into three bf16 parts (x = hi + mid + lo up to
// 2^-24 |x|), one part per B column (columns 3..7 repeat them and are dropped), so every
// product q * part is exact in f32 and only the sums round. A warp owns 16 rows of W; lane
// (g, c) (g = lane / 4, c = lane % 4) holds rows g and g + 8 of the A fragment and reads
// the c-th quarter of each group of those rows, so each mma sums inside one group and the
// group's scale applies to its f32 result. The block first writes x's parts to shared
// memory in the order the fragments read them, with each group's sum of x.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>

#include "lmx/backend/cuda/dependent_launch.cuh"
#include "lmx/backend/cuda/quant_matvec_mma.h"
#include "lmx/backend/cuda/quant_mma_fragments.cuh"
#include "lmx/backend/cuda/x_prologue.cuh"

namespace lmx::cuda::detail {
namespace {

using namespace qmma;

constexpr int kWarps = 8;  // per block
constexpr int kThreads = kWarps * 32;
constexpr int kTileRows = 16;  // rows of W per warp (the mma's M)
constexpr int kParts = 3;      // bf16 parts of x
constexpr int kMaxSmem = 200 * 1024;

// x = hi + mid + lo (each rounded to bf16 in turn; each remainder is exact in f32).
__device__ __forceinline__ void split3(float v, uint32_t (&part)[kParts]) {
  const __nv_bfloat16 hi = __float2bfloat16_rn(v);
  const float r1 = v - __bfloat162float(hi);
  const __nv_bfloat16 mid = __float2bfloat16_rn(r1);
  const float r2 = r1 - __bfloat162float(mid);
  part[0] = __bfloat16_as_ushort(hi), part[1] = __bfloat16_as_ushort(mid), part[2] = bf16_bits(r2);
}

__host__ __device__ constexpr int64_t align16(int64_t b) { return (b + 15) / 16 * 16; }

int64_t smem_bytes(int bits, int group, int64_t k) {
  const int64_t pad = bits == 4 ? 8 : 4;
  return align16(kParts * (k + pad) * 2) + align16(k / group * 4) + kWarps * kTileRows * 4;
}

template <int kBits, int kGroup, int kScale>
__global__ void __launch_bounds__(kThreads)
    quant_mma_matvec_kernel(const float* __restrict__ x, const __grid_constant__ QuantTargets targets,
                            unsigned total_tiles, int split, const __grid_constant__ XPrologue pro) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  await_inputs();
  using L = Layout<kBits>;
  using S = ScaleValue<kScale>;
  constexpr int kWd = kGroup / L::kPerWord / 4;  // words per lane per row per group
  constexpr int kU = kWd >= 8 ? 2 : (kWd >= 4 ? 4 : 8);  // groups in flight per lane
  constexpr int kLanesPerGroup = kGroup / 8;              // prologue: 8 x values per thread
  constexpr int kGroupWords = kGroup * kBits / 32;        // words of a row's group
  extern __shared__ __align__(16) unsigned char smem[];
  const int k = static_cast<int>(targets.q[0].k), ngroups = k / kGroup, stride = k + L::kPad;
  auto* xs = reinterpret_cast<unsigned short*>(smem);
  auto* gsum = reinterpret_cast<float*>(smem + align16(kParts * int64_t{stride} * 2));
  float* red = gsum + (ngroups + 3) / 4 * 4;

  const int warp = static_cast<int>(threadIdx.x) / 32, lane = static_cast<int>(threadIdx.x) % 32;
  const int g = lane / 4, c = lane % 4;
  const int tiles_per_iter = kWarps / split, part = warp % split;
  const unsigned iters = (total_tiles + tiles_per_iter - 1) / tiles_per_iter;

  // This warp's work in block iteration `it`: rows r0 + g and r0 + g + 8 (clamped to the
  // last row: lanes past the end read a real row and store nothing), groups [gbeg, gend).
  struct Work {
    bool active;
    int t, gbeg, gend;
    int64_t r0, sa, sb;
    const uint32_t *wa, *wb;
  };
  auto work_at = [&](unsigned it) {
    Work wk{};
    const unsigned tile = it * tiles_per_iter + warp / split;
    wk.active = tile < total_tiles;
    while (wk.t + 1 < targets.count && tile >= targets.first_block[wk.t + 1]) ++wk.t;
    const Quant& w = targets.q[wk.t];
    wk.r0 = static_cast<int64_t>(tile - targets.first_block[wk.t]) * kTileRows;
    const int64_t ra = wk.r0 + g < w.n ? wk.r0 + g : w.n - 1, rb = wk.r0 + g + 8 < w.n ? wk.r0 + g + 8 : w.n - 1;
    wk.wa = w.w + ra * w.w_stride + c * kWd, wk.wb = w.w + rb * w.w_stride + c * kWd;
    wk.sa = ra * w.s_stride, wk.sb = rb * w.s_stride;
    wk.gbeg = part * ngroups / split, wk.gend = (part + 1) * ngroups / split;
    return wk;
  };
  // kU groups of both rows in registers.
  struct Batch {
    uint32_t va[kU][kWd], vb[kU][kWd];
    typename S::Raw scale_a[kU], scale_b[kU], bias_a[kU], bias_b[kU];
  };
  auto load = [&](const Work& wk, int g0, Batch& b) {
    const Quant& w = targets.q[wk.t];
#pragma unroll
    for (int u = 0; u < kU; ++u) {
      const int G = g0 + u;
      if (G < wk.gend) {
        load_words<kWd>(wk.wa + G * kGroupWords, b.va[u]);
        load_words<kWd>(wk.wb + G * kGroupWords, b.vb[u]);
        b.scale_a[u] = S::load(w.scales, wk.sa + G), b.scale_b[u] = S::load(w.scales, wk.sb + G);
        b.bias_a[u] = S::load(w.biases, wk.sa + G), b.bias_b[u] = S::load(w.biases, wk.sb + G);
      }
    }
  };
  // Lane g reads part g % 3 (columns 3..7 of B repeat 0..2: their results are dropped).
  const unsigned short* xpart = xs + (g % 3) * stride + c * kWd * L::kPerWord;
  auto compute = [&](const Work& wk, int g0, const Batch& b, float (&acc)[4], float (&bacc)[2]) {
#pragma unroll
    for (int u = 0; u < kU; ++u) {
      const int G = g0 + u;
      if (G < wk.gend) {
        float d[4] = {}, dh[4] = {};
        const unsigned short* xg = xpart + G * kGroup;
#pragma unroll
        for (int i = 0; i < kWd; ++i) {
          const uint32_t wa = b.va[u][i], wb = b.vb[u][i];
          if constexpr (kBits == 4) {
            const uint4 bx = *reinterpret_cast<const uint4*>(xg + i * 8);
            mma(d, nibble_pair(wa, 0), nibble_pair(wb, 0), nibble_pair(wa, 4), nibble_pair(wb, 4), bx.x, bx.y);
            mma(d, nibble_pair(wa, 8), nibble_pair(wb, 8), nibble_pair(wa, 12), nibble_pair(wb, 12), bx.z, bx.w);
          } else {
            const uint2 bx = *reinterpret_cast<const uint2*>(xg + i * 4);
            mma(d, nibble_pair(wa, 0), nibble_pair(wb, 0), nibble_pair(wa, 8), nibble_pair(wb, 8), bx.x, bx.y);
            mma(dh, nibble_pair(wa, 4), nibble_pair(wb, 4), nibble_pair(wa, 12), nibble_pair(wb, 12), bx.x, bx.y);
          }
        }
        if constexpr (kBits == 8) {
#pragma unroll
          for (int e = 0; e < 4; ++e) d[e] = fmaf(16.0f, dh[e], d[e]);
        }
        const float s_a = S::value(b.scale_a[u]), s_b = S::value(b.scale_b[u]), xsum = gsum[G];
        acc[0] = fmaf(s_a, d[0], acc[0]), acc[1] = fmaf(s_a, d[1], acc[1]);
        acc[2] = fmaf(s_b, d[2], acc[2]), acc[3] = fmaf(s_b, d[3], acc[3]);
        bacc[0] = fmaf(S::value(b.bias_a[u]), xsum, bacc[0]);
        bacc[1] = fmaf(S::value(b.bias_b[u]), xsum, bacc[1]);
      }
    }
  };

  // The first batch of W is requested before x is split, so its latency covers the split.
  Batch batch;
  const Work first = work_at(blockIdx.x);
  if (first.active) load(first, first.gbeg, batch);

  // x's parts in fragment order (x made through the input prologue), and each group's sum of x.
  const float scale = pro.kind == 2 ? prologue_norm_scale(x, k, pro, red) : 1.0f;
  for (int b0 = 0; b0 < k / 8; b0 += kThreads) {
    const int b = b0 + static_cast<int>(threadIdx.x);
    float v[8] = {};
    if (b < k / 8) prologue_values(x, 8 * int64_t{b}, pro, scale, v);
    float s = ((v[0] + v[1]) + (v[2] + v[3])) + ((v[4] + v[5]) + (v[6] + v[7]));
#pragma unroll
    for (int o = 1; o < kLanesPerGroup; o <<= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
    if (b < k / 8) {
      if (b % kLanesPerGroup == 0) gsum[b / kLanesPerGroup] = s;
      uint32_t packed[kParts][4];
#pragma unroll
      for (int e = 0; e < 8; e += 2) {
        uint32_t p0[kParts], p1[kParts];
        split3(v[L::order(e)], p0);
        split3(v[L::order(e + 1)], p1);
#pragma unroll
        for (int i = 0; i < kParts; ++i) packed[i][e / 2] = p0[i] | (p1[i] << 16);
      }
#pragma unroll
      for (int i = 0; i < kParts; ++i) {
        unsigned short* dst = xs + i * stride + 8 * b;
        if constexpr (L::kPad % 8 == 0) {
          *reinterpret_cast<uint4*>(dst) = make_uint4(packed[i][0], packed[i][1], packed[i][2], packed[i][3]);
        } else {
          reinterpret_cast<uint2*>(dst)[0] = make_uint2(packed[i][0], packed[i][1]);
          reinterpret_cast<uint2*>(dst)[1] = make_uint2(packed[i][2], packed[i][3]);
        }
      }
    }
  }
  __syncthreads();

  for (unsigned it = blockIdx.x; it < iters; it += gridDim.x) {
    const bool is_first = it == blockIdx.x;
    const Work wk = is_first ? first : work_at(it);
    float ya = 0.0f, yb = 0.0f;  // rows r0 + g and r0 + g + 8 (summed over the quad below)
    if (wk.active) {
      float acc[4] = {}, bacc[2] = {};
      for (int g0 = wk.gbeg; g0 < wk.gend; g0 += kU) {
        if (!is_first || g0 != wk.gbeg) load(wk, g0, batch);
        compute(wk, g0, batch, acc, bacc);
      }
      // Lane c holds columns 2c, 2c + 1: c = 0 the hi and mid parts, c = 1 the lo part.
      ya = c == 0 ? (acc[0] + acc[1]) + bacc[0] : (c == 1 ? acc[0] : 0.0f);
      yb = c == 0 ? (acc[2] + acc[3]) + bacc[1] : (c == 1 ? acc[2] : 0.0f);
    }
    ya += __shfl_xor_sync(0xffffffffu, ya, 1), yb += __shfl_xor_sync(0xffffffffu, yb, 1);
    ya += __shfl_xor_sync(0xffffffffu, ya, 2), yb += __shfl_xor_sync(0xffffffffu, yb, 2);
    const int64_t n = targets.q[wk.t].n;
    float* y = targets.y[wk.t];
    if (split > 1) {  // the tile's groups were split over `split` warps: sum their rows here
      if (c == 0) red[warp * kTileRows + g] = ya, red[warp * kTileRows + g + 8] = yb;
      __syncthreads();
      if (wk.active && part == 0 && lane < kTileRows) {
        float sum = 0.0f;
        for (int p = 0; p < split; ++p) sum += red[(warp + p) * kTileRows + lane];
        if (wk.r0 + lane < n) y[wk.r0 + lane] = sum;
      }
      __syncthreads();
    } else if (wk.active && c == 0) {
      if (wk.r0 + g < n) y[wk.r0 + g] = ya;
      if (wk.r0 + g + 8 < n) y[wk.r0 + g + 8] = yb;
    }
  }
#else
  __trap();
#endif
}

// Shared memory a block may take: kMaxSmem, or less where the device allows less (sm_80).
int64_t max_smem() {
  return std::min<int64_t>(kMaxSmem, device_value(cudaDevAttrMaxSharedMemoryPerBlockOptin));
}

template <int kBits, int kGroup, int kScale>
cudaError_t launch(const float* x, QuantTargets& t, cudaStream_t stream, const XPrologue* pro) {
  auto* kernel = quant_mma_matvec_kernel<kBits, kGroup, kScale>;
  const int64_t k = t.q[0].k, smem = smem_bytes(kBits, kGroup, k);
  static const cudaError_t attr = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                                       static_cast<int>(max_smem()));
  if (attr != cudaSuccess) return attr;
  t.first_block[0] = 0;
  for (int i = 0; i < t.count; ++i)
    t.first_block[i + 1] = t.first_block[i] + static_cast<unsigned>((t.q[i].n + kTileRows - 1) / kTileRows);
  const unsigned tiles = t.first_block[t.count];
  int per_sm = 0;
  cudaError_t e = cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, kThreads, static_cast<size_t>(smem));
  if (e != cudaSuccess) return e;
  const int64_t slots = int64_t{std::max(per_sm, 1)} * std::max(device_value(cudaDevAttrMultiProcessorCount), 1);
  // Warps per tile (the tile's groups split among them): the fewest that fill every slot,
  // keeping >= 2 groups per warp.
  const int ngroups = static_cast<int>(k / kGroup);
  int split = 1;
  while (split < kWarps && int64_t{tiles} * split < slots * kWarps && ngroups >= 4 * split) split *= 2;
  const int64_t iters = (tiles + kWarps / split - 1) / (kWarps / split);
  const dim3 grid(static_cast<unsigned>(std::min(iters, slots)));
  // Launched the usual way: the grid is sized to the blocks the device holds at once, and
  // launched early some of them would wait for the previous kernel's SMs (measured slower).
  const XPrologue none{};
  kernel<<<grid, kThreads, static_cast<size_t>(smem), stream>>>(x, t, tiles, split, pro ? *pro : none);
  return cudaGetLastError();
}

template <int kBits, int kGroup>
cudaError_t launch_scaled(const float* x, QuantTargets& t, cudaStream_t stream, const XPrologue* pro) {
  switch (t.q[0].scale_dtype) {
    case kBF16: return launch<kBits, kGroup, kScaleBF16>(x, t, stream, pro);
    case kF16: return launch<kBits, kGroup, kScaleF16>(x, t, stream, pro);
    default: return launch<kBits, kGroup, kScaleF32>(x, t, stream, pro);
  }
}

template <int kBits>
cudaError_t launch_grouped(const float* x, QuantTargets& t, cudaStream_t stream, const XPrologue* pro) {
  switch (t.q[0].group_size) {
    case 32: return launch_scaled<kBits, 32>(x, t, stream, pro);
    case 64: return launch_scaled<kBits, 64>(x, t, stream, pro);
    default: return launch_scaled<kBits, 128>(x, t, stream, pro);
  }
}

bool aligned(const void* p, uintptr_t a) { return (reinterpret_cast<uintptr_t>(p) & (a - 1)) == 0; }

}  // namespace

bool quant_mma_matvec_fits(const Quant* q, int count) {
  static const bool tensor_cores = device_value(cudaDevAttrComputeCapabilityMajor) >= 8;
  if (!tensor_cores || count < 1 || count > kMaxMatvecTargets) return false;
  const Quant& f = q[0];
  if ((f.bits != 4 && f.bits != 8) || (f.group_size != 32 && f.group_size != 64 && f.group_size != 128)) return false;
  if (f.scale_dtype != kBF16 && f.scale_dtype != kF16 && f.scale_dtype != kF32) return false;
  if (f.k <= 0 || f.k % f.group_size != 0 || f.k > (int64_t{1} << 30) ||
      smem_bytes(f.bits, f.group_size, f.k) > max_smem()) {
    return false;
  }
  const int64_t words = f.group_size * f.bits / 128;  // per lane per row per group
  for (int i = 0; i < count; ++i) {
    const Quant& w = q[i];
    if (w.mode != 0 || w.bits != f.bits || w.group_size != f.group_size || w.scale_dtype != f.scale_dtype || w.k != f.k ||
        w.n < 1 || w.w_stride % words != 0 || !aligned(w.w, std::min<uintptr_t>(16, 4 * static_cast<uintptr_t>(words)))) {
      return false;
    }
  }
  return true;
}

cudaError_t launch_quant_mma_matvec(const float* x, QuantTargets& t, cudaStream_t stream, const XPrologue* pro) {
  return t.q[0].bits == 4 ? launch_grouped<4>(x, t, stream, pro) : launch_grouped<8>(x, t, stream, pro);
}

}  // namespace lmx::cuda::detail
