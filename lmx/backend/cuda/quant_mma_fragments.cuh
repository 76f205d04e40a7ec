// The pieces shared by the tensor-core kernels over MLX affine 4 / 8-bit weights
// (quant_matvec_mma.cu, quant_gemm_few.cu): W's codes as exact bf16 pairs of the mma's A
// operand, the order in which x's values must sit to meet them in the B operand, the scale
// readers, and W's streaming loads.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace lmx::cuda::detail::qmma {

// An attribute of the current device, 0 where it cannot be read (host side).
inline int device_value(cudaDeviceAttr attr) {
  int dev = 0, v = 0;
  if (cudaGetDevice(&dev) != cudaSuccess || cudaDeviceGetAttribute(&v, attr, dev) != cudaSuccess) return 0;
  return v;
}

enum ScaleKind { kScaleBF16, kScaleF16, kScaleF32 };

template <int kScale>
struct ScaleValue {
  using Raw = unsigned short;
  __device__ static Raw load(const void* p, int64_t i) { return __ldg(static_cast<const unsigned short*>(p) + i); }
  __device__ static float value(Raw r) {
    if constexpr (kScale == kScaleBF16) return __uint_as_float(static_cast<uint32_t>(r) << 16);
    return __half2float(__ushort_as_half(r));
  }
};
template <>
struct ScaleValue<kScaleF32> {
  using Raw = float;
  __device__ static Raw load(const void* p, int64_t i) { return __ldg(static_cast<const float*>(p) + i); }
  __device__ static float value(Raw r) { return r; }
};

// N 32-bit words of W that only this kernel reads, once: no L1 allocation.
template <int N>
__device__ __forceinline__ void load_words(const uint32_t* p, uint32_t (&v)[N]) {
  if constexpr (N == 1) {
    asm("ld.global.nc.L1::no_allocate.u32 %0, [%1];" : "=r"(v[0]) : "l"(p));
  } else if constexpr (N == 2) {
    asm("ld.global.nc.L1::no_allocate.v2.u32 {%0, %1}, [%2];" : "=r"(v[0]), "=r"(v[1]) : "l"(p));
  } else {
#pragma unroll
    for (int i = 0; i < N; i += 4) {
      asm("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
          : "=r"(v[i]), "=r"(v[i + 1]), "=r"(v[i + 2]), "=r"(v[i + 3])
          : "l"(p + i));
    }
  }
}

// The nibbles at bits [s, s + 4) and [s + 16, s + 20) of w as two bf16 integers (low half
// first): 128 + q by the exponent of 128 in the high bits, minus 128 exactly.
__device__ __forceinline__ uint32_t nibble_pair(uint32_t w, int s) {
  const uint32_t h = ((w >> s) & 0x000F000Fu) | 0x43004300u;
  uint32_t r;
  asm("fma.rn.bf16x2 %0, %1, %2, %3;" : "=r"(r) : "r"(h), "r"(0x3F803F80u), "r"(0xC300C300u));
  return r;
}

__device__ __forceinline__ void mma(float (&d)[4], uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3, uint32_t b0,
                                    uint32_t b1) {
  asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

__device__ __forceinline__ uint32_t bf16_bits(float f) {
  return static_cast<uint32_t>(__bfloat16_as_ushort(__float2bfloat16_rn(f)));
}

template <int kBits>
struct Layout {
  // x values per word of W, and the order in which a word's x values sit in shared memory:
  // the B fragment pairs them as the A pairs of nibble_pair do (4-bit: values 0 and 4,
  // 1 and 5, ...; 8-bit: bytes 0 and 2, 1 and 3, the same pair for both nibbles).
  static constexpr int kPerWord = 32 / kBits;
  __device__ static int order(int e) {
    if constexpr (kBits == 4) return (e % 2) * 4 + e / 2;  // 0 4 1 5 2 6 3 7
    return (e / 4) * 4 + (e % 2) * 2 + (e % 4) / 2;       // 0 2 1 3 | 4 6 5 7
  }
  // Row padding (bf16 elements) of each part in shared memory: the parts' reads fall in
  // distinct banks.
  static constexpr int kPad = kBits == 4 ? 8 : 4;
};

}  // namespace lmx::cuda::detail::qmma
