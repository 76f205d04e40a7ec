// Flash attention for prefill on the tensor cores (mma.sync m16n8k16, bf16 in, f32
// accumulate). A block of kWarps warps takes kRows = 16 * kWarps query rows of one
// (batch, head); warp w owns rows 16w..16w+15. The block walks the keys its rows see
// kKeys at a time: K and V of the tile are copied (cp.async, the next tile's queued
// while this one is used) into shared memory once for all its rows; each warp computes its 16 x kKeys scores S = Q K^T, applies scale,
// soft-cap, the visibility rules (causal, window, key count) and the additive mask, runs
// the online softmax on its rows (a row lives in the 4 lanes of a quad), and adds P V
// to its f32 output accumulator, with P rounded to bf16 straight from S's registers (the
// accumulator layout of two n8 tiles is the A-operand layout of one k16 step). The
// epilogue merges the sink and normalizes as attention_kernels.cu's kernels do.
//
// Fragment layouts (PTX ISA, mma.m16n8k16 .bf16; g = lane / 4, t = lane % 4):
//   A 16x16 row-major: a0 (g, 2t..2t+1), a1 (g+8, 2t..), a2 (g, 2t+8..), a3 (g+8, 2t+8..)
//   B 16x8 "col":      b0 (k 2t..2t+1, n g), b1 (k 2t+8.., n g)
//   C 16x8 f32:        c0 c1 (g, 2t..2t+1), c2 c3 (g+8, 2t..2t+1)
// ldmatrix.x4 gives lane l's register r from 8x8 matrix r, element (l / 4, 2 (l % 4)..)
// (.trans: the transposed element), lanes 8r..8r+7 giving matrix r's row addresses.
#include <cuda_bf16.h>
#include <math_constants.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>

#include "lmx/backend/cuda/device_values.cuh"
#include "lmx/backend/cuda/flash_attention.h"
#include "lmx/base/env_switch.h"

namespace lmx::cuda::detail {
namespace {

constexpr int kWarps = 4, kRows = 16 * kWarps;
// Fewer query rows keep the row / split kernels (each would waste most of a 64-row tile).
constexpr int64_t kFlashMinRows = 16;
constexpr int kMaxDim = 256;
constexpr float kLog2e = 1.4426950408889634f;

// LMX_CUDA_FLASH_ASYNC=0 fills the K / V tiles with plain loads (to measure cp.async).
bool async_enabled() {
  static const bool enabled = [] {
    const char* env = std::getenv("LMX_CUDA_FLASH_ASYNC");
    return !env || std::string(env) != "0";
  }();
  return enabled;
}


__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
  const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);  // .x (low half) = lo
  uint32_t u;
  memcpy(&u, &v, sizeof u);
  return u;
}

__device__ __forceinline__ uint32_t shared_address(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

__device__ __forceinline__ void ldmatrix_x4(uint32_t r[4], const uint16_t* row) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(shared_address(row)));
}

__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t r[4], const uint16_t* row) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(shared_address(row)));
}

// 16 bytes global -> shared without a register round trip; `bytes` 0 writes zeros.
__device__ __forceinline__ void cp_async16(void* dst, const void* src, int bytes) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(shared_address(dst)), "l"(src), "r"(bytes));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
__device__ __forceinline__ void cp_async_wait_one() { asm volatile("cp.async.wait_group 1;\n" ::); }

// c += A B for one 16x8 tile.
__device__ __forceinline__ void mma(float c[4], const uint32_t a[4], uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// One strided operand [rows, dim] of a (batch, head): element (r, d) at
// base + r * row_stride + d * dim_stride, of dtype; vec: dim_stride 1, dim % 4 == 0 and
// 4-element groups aligned (16 bytes for f32, 8 for f16 / bf16); async (bf16 only):
// dim % 8 == 0 and 8-element groups 16-byte aligned, for cp.async.
struct Rows {
  const void* base;
  int dtype;
  int64_t row_stride, dim_stride;
  int dim;
  bool vec, async;
};

// fill_tile's work queued as cp.async copies (bf16 rows, Rows::async).
template <int kD, int kTileRows>
__device__ __forceinline__ void fill_tile_async(uint16_t* tile, const Rows& src, int64_t row0, int64_t valid) {
  constexpr int kChunks = kD / 8, kLd = kD + 8, kThreads = kWarps * 32;
  constexpr int kSteps = (kTileRows * kChunks + kThreads - 1) / kThreads;
#pragma unroll
  for (int step = 0; step < kSteps; ++step) {
    const int idx = static_cast<int>(threadIdx.x) + step * kThreads;
    if (kTileRows * kChunks % kThreads != 0 && idx >= kTileRows * kChunks) break;
    const int r = idx / kChunks, c = (idx % kChunks) * 8;
    const int64_t row = row0 + r;
    const bool in = row < valid && c < src.dim;
    const uint16_t* from = static_cast<const uint16_t*>(src.base) + (in ? row * src.row_stride + c : 0);
    cp_async16(tile + r * kLd + c, from, in ? 16 : 0);
  }
}

// Rows [row0, row0 + kTileRows) of `src` into a [kTileRows][kD + 8] bf16 tile: rows at or
// past `valid` and dims past src.dim are zeros.
template <int kD, int kTileRows>
__device__ __forceinline__ void fill_tile(uint16_t* tile, const Rows& src, int64_t row0, int64_t valid) {
  constexpr int kChunks = kD / 4, kLd = kD + 8, kThreads = kWarps * 32;
  constexpr int kSteps = (kTileRows * kChunks + kThreads - 1) / kThreads;
#pragma unroll
  for (int step = 0; step < kSteps; ++step) {
    const int idx = static_cast<int>(threadIdx.x) + step * kThreads;
    if (kTileRows * kChunks % kThreads != 0 && idx >= kTileRows * kChunks) break;
    const int r = idx / kChunks, c = (idx % kChunks) * 4;
    const int64_t row = row0 + r;
    uint2 packed = {0u, 0u};
    if (row < valid && c < src.dim) {
      const int64_t off = row * src.row_stride + c * src.dim_stride;
      if (src.vec && src.dtype == kBF16) {
        packed = *reinterpret_cast<const uint2*>(static_cast<const uint16_t*>(src.base) + off);
      } else {
        float v[4];
        if (src.vec && src.dtype == kF32) {
          const float4 f = *reinterpret_cast<const float4*>(static_cast<const float*>(src.base) + off);
          v[0] = f.x, v[1] = f.y, v[2] = f.z, v[3] = f.w;
        } else {
#pragma unroll
          for (int t = 0; t < 4; ++t)
            v[t] = c + t < src.dim ? load_float(src.base, src.dtype, off + t * src.dim_stride) : 0.0f;
        }
        packed.x = pack_bf16(v[0], v[1]);
        packed.y = pack_bf16(v[2], v[3]);
      }
    }
    *reinterpret_cast<uint2*>(tile + r * kLd + c) = packed;
  }
}

struct FlashArgs {
  Attention a;
  Rows q, k, v;  // base at (batch 0, head 0); the kernel adds its own
};

template <int kD, int kKeys>
__global__ void __launch_bounds__(kWarps * 32) flash_attention_kernel(FlashArgs f) {
  constexpr int kLd = kD + 8;
  static_assert(kD % 16 == 0 && kKeys % 16 == 0, "tiles of whole mma steps");
  extern __shared__ uint4 shared4[];
  uint16_t* qs = reinterpret_cast<uint16_t*>(shared4);
  uint16_t* kbuf = qs + kRows * kLd;  // [2][kKeys][kLd]: K of this tile and the next
  uint16_t* vbuf = kbuf + 2 * kKeys * kLd;
  const Attention& a = f.a;

  const int64_t tiles = (a.q_len + kRows - 1) / kRows;
  const int64_t i0 = (tiles - 1 - blockIdx.y) * kRows;  // the longest key ranges first
  const int64_t h = blockIdx.x % a.q_heads, b = blockIdx.x / a.q_heads;
  const int64_t kvh = h / (a.q_heads / a.kv_heads);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;

  auto at = [](Rows r, int64_t off, int dtype_size) {
    r.base = static_cast<const char*>(r.base) + off * dtype_size;
    return r;
  };
  const int kv_size = a.kv_dtype == kF32 ? 4 : 2;
  const Rows q = at(f.q, b * a.q_strides[0] + h * a.q_strides[1], 4);
  const Rows k = at(f.k, b * a.k_strides[0] + kvh * a.k_strides[1], kv_size);
  const Rows v = at(f.v, b * a.v_strides[0] + kvh * a.v_strides[1], kv_size);
  fill_tile<kD, kRows>(qs, q, i0, a.q_len);

  // The keys any row of the block sees.
  const int64_t i_last = min(i0 + kRows, a.q_len) - 1;
  int64_t j_end = a.kv_len;
  if (a.causal) j_end = min(j_end, a.q_offset + i_last + 1);
  int64_t j_begin = 0;
  if (a.window > 0) j_begin = max(int64_t{0}, a.q_offset + i0 - a.window + 1);

  // This warp's rows: positions pos0..pos0 + 15; its rows g and g + 8 at pos0 + g (+ 8).
  const int64_t w_i0 = i0 + 16 * warp, pos0 = a.q_offset + w_i0;
  const bool warp_rows = w_i0 < a.q_len;
  const bool warp_rows_full = w_i0 + 16 <= a.q_len;
  const float* mask = a.mask ? a.mask + b * a.mask_strides[0] + h * a.mask_strides[1] : nullptr;

  float o[kD / 8][4];
#pragma unroll
  for (int n = 0; n < kD / 8; ++n) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.0f;
  float m[2] = {-CUDART_INF_F, -CUDART_INF_F}, l[2] = {0.0f, 0.0f};

  // K / V tile n + 1 is queued (cp.async where the rows allow) before tile n is used.
  auto fill = [&](int buf, int64_t j) {
    uint16_t* kt = kbuf + buf * kKeys * kLd;
    uint16_t* vt = vbuf + buf * kKeys * kLd;
    if (k.async && v.async) {
      fill_tile_async<kD, kKeys>(kt, k, j, j_end);
      fill_tile_async<kD, kKeys>(vt, v, j, j_end);
    } else {
      fill_tile<kD, kKeys>(kt, k, j, j_end);
      fill_tile<kD, kKeys>(vt, v, j, j_end);
    }
  };
  if (j_begin < j_end) fill(0, j_begin);
  cp_async_commit();
  int buf = 0;
  for (int64_t j0 = j_begin; j0 < j_end; j0 += kKeys, buf ^= 1) {
    if (j0 + kKeys < j_end) fill(buf ^ 1, j0 + kKeys);  // its buffer was last read before the sync below
    cp_async_commit();
    cp_async_wait_one();  // this thread's copies of tile j0 have landed
    __syncthreads();      // everyone's (and the q tile, the first time)
    const uint16_t* ks = kbuf + buf * kKeys * kLd;
    const uint16_t* vs = vbuf + buf * kKeys * kLd;
    // No row of the warp sees a key of the tile: nothing to add.
    if (!warp_rows || (a.causal && j0 > pos0 + 15) || (a.window > 0 && j0 + kKeys - 1 <= pos0 - a.window)) {
      __syncthreads();
      continue;
    }
    // Every key of the tile visible to every row of the warp: no per-element test.
    const bool all_visible = warp_rows_full && j0 + kKeys <= a.kv_len && (!a.causal || j0 + kKeys - 1 <= pos0) &&
                             (a.window <= 0 || j0 > pos0 + 15 - a.window);

    float s[kKeys / 8][4];
#pragma unroll
    for (int j = 0; j < kKeys / 8; ++j) s[j][0] = s[j][1] = s[j][2] = s[j][3] = 0.0f;
#pragma unroll
    for (int kk = 0; kk < kD / 16; ++kk) {
      uint32_t qa[4];
      ldmatrix_x4(qa, qs + (16 * warp + (lane % 8) + ((lane / 8) % 2) * 8) * kLd + 16 * kk + (lane / 16) * 8);
#pragma unroll
      for (int j = 0; j < kKeys / 8; j += 2) {
        uint32_t kb[4];  // b0 b1 of key tiles j and j + 1
        ldmatrix_x4(kb, ks + (8 * j + (lane % 8) + (lane / 16) * 8) * kLd + 16 * kk + ((lane / 8) % 2) * 8);
        mma(s[j], qa, kb[0], kb[1]);
        mma(s[j + 1], qa, kb[2], kb[3]);
      }
    }

    float mx[2] = {-CUDART_INF_F, -CUDART_INF_F};
#pragma unroll
    for (int j = 0; j < kKeys / 8; ++j) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        float x = s[j][e] * a.scale;
        if (a.softcap > 0.0f) x = a.softcap * tanhf(x / a.softcap);
        if (!all_visible || mask) {
          const int64_t i = w_i0 + g + 8 * (e / 2), pos = a.q_offset + i;
          const int64_t jj = j0 + 8 * j + 2 * t + (e % 2);
          bool visible = i < a.q_len && jj < a.kv_len;
          if (a.causal && jj > pos) visible = false;
          if (a.window > 0 && pos - jj >= a.window) visible = false;
          if (visible && mask) x += mask[i * a.mask_strides[2] + jj * a.mask_strides[3]];
          if (!visible) x = -CUDART_INF_F;
        }
        s[j][e] = x;
        mx[e / 2] = fmaxf(mx[e / 2], x);
      }
    }
    float base[2];  // the new running max (0 for a row that has seen no key yet)
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 1));
      mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 2));
      const float m_new = fmaxf(m[r], mx[r]);
      base[r] = m_new == -CUDART_INF_F ? 0.0f : m_new;
      const float corr = exp2f((m[r] - base[r]) * kLog2e);  // 0 while m was -inf
      m[r] = m_new;
      l[r] *= corr;
#pragma unroll
      for (int n = 0; n < kD / 8; ++n) o[n][2 * r] *= corr, o[n][2 * r + 1] *= corr;
    }
#pragma unroll
    for (int j = 0; j < kKeys / 8; ++j) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const float p = exp2f((s[j][e] - base[e / 2]) * kLog2e);
        s[j][e] = p;
        l[e / 2] += p;  // this lane's share of the row sum; the quad adds them at the end
      }
    }
#pragma unroll
    for (int kc = 0; kc < kKeys / 16; ++kc) {
      const uint32_t pa[4] = {pack_bf16(s[2 * kc][0], s[2 * kc][1]), pack_bf16(s[2 * kc][2], s[2 * kc][3]),
                              pack_bf16(s[2 * kc + 1][0], s[2 * kc + 1][1]),
                              pack_bf16(s[2 * kc + 1][2], s[2 * kc + 1][3])};
#pragma unroll
      for (int n = 0; n < kD / 8; n += 2) {
        uint32_t vb[4];  // b0 b1 of dim tiles n and n + 1
        ldmatrix_x4_trans(vb, vs + (16 * kc + (lane % 8) + ((lane / 8) % 2) * 8) * kLd + 8 * n + (lane / 16) * 8);
        mma(o[n], pa, vb[0], vb[1]);
        mma(o[n + 1], pa, vb[2], vb[3]);
      }
    }
    __syncthreads();  // tile j0's buffers are read: the next iteration refills them
  }

  const float sink = a.sinks ? a.sinks[h] : -CUDART_INF_F;
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    l[r] += __shfl_xor_sync(0xffffffffu, l[r], 1);
    l[r] += __shfl_xor_sync(0xffffffffu, l[r], 2);
    const int64_t i = w_i0 + g + 8 * r;
    if (i >= a.q_len) continue;
    const float mx = fmaxf(sink, m[r]);
    float inv = 0.0f;  // a row that sees no key (and no sink) gets zeros
    if (mx != -CUDART_INF_F) {
      const float w = m[r] == -CUDART_INF_F ? 0.0f : expf(m[r] - mx);
      const float denom = (a.sinks ? expf(sink - mx) : 0.0f) + l[r] * w;
      inv = denom > 0.0f ? w / denom : 0.0f;
    }
    float* out = a.out + b * a.out_strides[0] + h * a.out_strides[1] + i * a.out_strides[2];
#pragma unroll
    for (int n = 0; n < kD / 8; ++n) {
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        const int64_t d = 8 * n + 2 * t + e;
        if (d < a.v_head_dim) out[d * a.out_strides[3]] = o[n][2 * r + e] * inv;
      }
    }
  }
}

// bf16 rows for cp.async: 8-element groups at 16-byte aligned addresses.
bool async_ok(const void* p, const int64_t s[4], int64_t dim, int dtype) {
  return dtype == kBF16 && s[3] == 1 && dim % 8 == 0 && s[0] % 8 == 0 && s[1] % 8 == 0 && s[2] % 8 == 0 &&
         reinterpret_cast<uintptr_t>(p) % 16 == 0;
}

bool vec_ok(const void* p, const int64_t s[4], int64_t dim, int dtype) {
  const int64_t size = dtype == kF32 ? 4 : 2;
  return s[3] == 1 && dim % 4 == 0 && s[0] % 4 == 0 && s[1] % 4 == 0 && s[2] % 4 == 0 &&
         reinterpret_cast<uintptr_t>(p) % static_cast<uintptr_t>(4 * size) == 0;
}

template <int kD, int kKeys>
cudaError_t launch(const FlashArgs& f, cudaStream_t stream) {
  const size_t bytes = static_cast<size_t>(kRows + 4 * kKeys) * (kD + 8) * sizeof(uint16_t);
  static const cudaError_t opt_in = cudaFuncSetAttribute(
      flash_attention_kernel<kD, kKeys>, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes));
  if (opt_in != cudaSuccess) return opt_in;
  const Attention& a = f.a;
  const dim3 grid(static_cast<unsigned>(a.batch * a.q_heads), static_cast<unsigned>((a.q_len + kRows - 1) / kRows));
  flash_attention_kernel<kD, kKeys><<<grid, kWarps * 32, bytes, stream>>>(f);
  return cudaGetLastError();
}

}  // namespace

bool flash_attention_takes(const Attention& a) {
  return !a.quantized && a.kv_dtype == kBF16 && a.q_len >= kFlashMinRows && a.head_dim <= kMaxDim &&
         a.v_head_dim <= kMaxDim && (a.q_len + kRows - 1) / kRows <= 65535 && cuda_flash_attention();
}

cudaError_t launch_flash_attention(const Attention& a, cudaStream_t stream) {
  FlashArgs f;
  f.a = a;
  f.q = {a.q, kF32, a.q_strides[2], a.q_strides[3], static_cast<int>(a.head_dim),
         vec_ok(a.q, a.q_strides, a.head_dim, kF32), false};
  f.k = {a.k, a.kv_dtype, a.k_strides[2], a.k_strides[3], static_cast<int>(a.head_dim),
         vec_ok(a.k, a.k_strides, a.head_dim, a.kv_dtype),
         async_enabled() && async_ok(a.k, a.k_strides, a.head_dim, a.kv_dtype)};
  f.v = {a.v, a.kv_dtype, a.v_strides[2], a.v_strides[3], static_cast<int>(a.v_head_dim),
         vec_ok(a.v, a.v_strides, a.v_head_dim, a.kv_dtype), async_ok(a.v, a.v_strides, a.v_head_dim, a.kv_dtype)};
  const int64_t dims = std::max(a.head_dim, a.v_head_dim);
  if (dims <= 32) return launch<32, 64>(f, stream);
  if (dims <= 64) return launch<64, 64>(f, stream);
  if (dims <= 80) return launch<80, 64>(f, stream);
  if (dims <= 96) return launch<96, 64>(f, stream);
  if (dims <= 128) return launch<128, 64>(f, stream);
  return launch<256, 32>(f, stream);
}

}  // namespace lmx::cuda::detail
