// Device-side loads and stores of every lmx dtype, rounding as lmx/core/half.h and
// lmx/core/detail/element_access.h do on the host, and the MLX quantized-value reader.
#pragma once

#include <cuda_fp16.h>

#include <cstdint>

#include "lmx/backend/cuda/launch_args.h"

namespace lmx::cuda::detail {

__device__ __forceinline__ float bf16_to_float(uint16_t h) { return __uint_as_float(static_cast<uint32_t>(h) << 16); }
__device__ __forceinline__ uint16_t float_to_bf16(float f) {
  uint32_t u = __float_as_uint(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40u);  // quiet NaN
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}
// A KV cache element: f32, or bf16 (rounded as the host's .to(bf16)).
template <bool kBf16>
__device__ __forceinline__ void store_kv(void* base, int64_t i, float v) {
  if constexpr (kBf16) {
    static_cast<uint16_t*>(base)[i] = float_to_bf16(v);
  } else {
    static_cast<float*>(base)[i] = v;
  }
}
__device__ __forceinline__ float f16_to_float(uint16_t h) { return __half2float(__ushort_as_half(h)); }
__device__ __forceinline__ uint16_t float_to_f16(float f) { return __half_as_ushort(__float2half_rn(f)); }

__device__ __forceinline__ double load_double(const void* p, int dt, int64_t i) {
  switch (dt) {
    case kF32: return static_cast<const float*>(p)[i];
    case kF16: return f16_to_float(static_cast<const uint16_t*>(p)[i]);
    case kBF16: return bf16_to_float(static_cast<const uint16_t*>(p)[i]);
    case kI32: return static_cast<const int32_t*>(p)[i];
    case kI64: return static_cast<double>(static_cast<const int64_t*>(p)[i]);
    case kU8: return static_cast<const uint8_t*>(p)[i];
    case kU32: return static_cast<const uint32_t*>(p)[i];
    default: return static_cast<const uint8_t*>(p)[i] != 0 ? 1.0 : 0.0;
  }
}

__device__ __forceinline__ float load_float(const void* p, int dt, int64_t i) {
  switch (dt) {
    case kF32: return static_cast<const float*>(p)[i];
    case kF16: return f16_to_float(static_cast<const uint16_t*>(p)[i]);
    case kBF16: return bf16_to_float(static_cast<const uint16_t*>(p)[i]);
    default: return static_cast<float>(load_double(p, dt, i));
  }
}

__device__ __forceinline__ int64_t load_int(const void* p, int dt, int64_t i) {
  switch (dt) {
    case kI32: return static_cast<const int32_t*>(p)[i];
    case kI64: return static_cast<const int64_t*>(p)[i];
    case kU8: return static_cast<const uint8_t*>(p)[i];
    case kU32: return static_cast<const uint32_t*>(p)[i];
    case kBool: return static_cast<const uint8_t*>(p)[i] != 0;
    default: return static_cast<int64_t>(load_double(p, dt, i));
  }
}

__device__ __forceinline__ void store_double(void* p, int dt, int64_t i, double v) {
  switch (dt) {
    case kF32: static_cast<float*>(p)[i] = static_cast<float>(v); return;
    case kF16: static_cast<uint16_t*>(p)[i] = float_to_f16(static_cast<float>(v)); return;
    case kBF16: static_cast<uint16_t*>(p)[i] = float_to_bf16(static_cast<float>(v)); return;
    case kI32: static_cast<int32_t*>(p)[i] = static_cast<int32_t>(v); return;
    case kI64: static_cast<int64_t*>(p)[i] = static_cast<int64_t>(v); return;
    case kU8: static_cast<uint8_t*>(p)[i] = static_cast<uint8_t>(v); return;
    case kU32: static_cast<uint32_t*>(p)[i] = static_cast<uint32_t>(v); return;
    default: static_cast<uint8_t*>(p)[i] = v != 0.0 ? 1 : 0; return;
  }
}

__device__ __forceinline__ void store_int(void* p, int dt, int64_t i, int64_t v) {
  switch (dt) {
    case kI32: static_cast<int32_t*>(p)[i] = static_cast<int32_t>(v); return;
    case kI64: static_cast<int64_t*>(p)[i] = v; return;
    case kU8: static_cast<uint8_t*>(p)[i] = static_cast<uint8_t>(v); return;
    case kU32: static_cast<uint32_t*>(p)[i] = static_cast<uint32_t>(v); return;
    case kBool: static_cast<uint8_t*>(p)[i] = v != 0 ? 1 : 0; return;
    default: store_double(p, dt, i, static_cast<double>(v)); return;
  }
}

__device__ __forceinline__ bool is_floating(int dt) { return dt == kF32 || dt == kF16 || dt == kBF16; }

// Element j of an MLX-quantized row: bits [j*bits, (j+1)*bits) of the row's
// little-endian bit stream (3/5/6-bit values may straddle two words).
__device__ __forceinline__ uint32_t mlx_q(const uint32_t* row, int bits, int64_t j) {
  const int64_t bit = j * bits;
  const int64_t word = bit >> 5;
  const int shift = static_cast<int>(bit & 31);
  uint32_t v = row[word] >> shift;
  if (shift + bits > 32) v |= row[word + 1] << (32 - shift);
  return v & ((1u << bits) - 1u);
}

// scale * q + bias as the CPU computes it: an f32 multiply, then an add (no FMA).
__device__ __forceinline__ float affine(float scale, uint32_t q, float bias) {
  return __fadd_rn(__fmul_rn(scale, static_cast<float>(q)), bias);
}

// Grid size for a grid-stride loop over n items.
inline unsigned grid_for(int64_t n, int threads) {
  int64_t blocks = (n + threads - 1) / threads;
  if (blocks > 65535 * 16) blocks = 65535 * 16;
  return static_cast<unsigned>(blocks < 1 ? 1 : blocks);
}

}  // namespace lmx::cuda::detail
