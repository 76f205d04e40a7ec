// Internal: the pieces of the integer-activation quantized GEMMs (prefill) that every tier
// shares, implemented once in quant_gemm_avx2.cpp (AVX2 code, called by the AVX-512 tier
// too): x rounded to int16 (or int8) per row and group, and the packing of A and B slivers. Only
// plain declarations here, so a translation unit built for another ISA can include it.
#pragma once

#include <cstdint>

#include "lmx/backend/cpu/quantized.h"  // also declares ThreadPool

namespace lmx::cpu::detail {

// Rows of an A sliver and columns of a B sliver (the AVX2 6x16 tile; the AVX-512 tile is
// 6 x 2 slivers).
constexpr int kInt16SliverRows = 6;
constexpr int kInt16SliverCols = 16;

// x rounded once per call: q[i * k + p], and per row and group its scale dx and the sum of
// the f32 inputs. Rows are padded to a multiple of kInt16SliverRows with zero dx and sums,
// so partial tiles read zeros. The buffers are the calling thread's (valid until its next
// call).
struct XInt16 {
  const int16_t* q = nullptr;
  const float* dx = nullptr;
  const float* sum = nullptr;
  int64_t k = 0, groups = 0;
};
XInt16 quantize_x_int16(
    const float* x, int64_t ldx, int64_t m, int64_t k, int gs, ThreadPool& pool);

// A sliver: dst[pp * 6 + ii] = the int16 pair (x[i0 + ii, p0 + 2pp], x[.., p0 + 2pp + 1]);
// rows ii >= mr are zero.
void pack_a_int16(int32_t* dst, const XInt16& x, int64_t i0, int mr, int64_t p0, int64_t kc);

// Bytes of one group in a B sliver: gs/2 pairs x 16 columns of int32, 16 scales, 16 biases.
constexpr int64_t group_bytes_int16(int gs) {
  return gs / 2 * kInt16SliverCols * 4 + 2 * kInt16SliverCols * 4;
}

// B sliver for columns j0 .. j0 + nr (W rows), inputs [p0, p0 + kc) (whole groups): per
// group, the q pairs (q[j, 2pp] in the low 16 bits, q[j, 2pp + 1] in the high; 64 bytes per
// pair), then s[g, j] and b[g, j] as f32; columns >= nr are zero. dst 32-byte aligned.
void pack_b_int16(
    uint8_t* dst, const PackedQuantWeight& w, int64_t j0, int nr, int64_t p0, int64_t kc);

// The same for int8 activations (x rounded per row and group with d = amax / 127, ~1e-3
// relative, as the int8 matvec): quads of inputs per 32-bit step, for vpdpbusd.
struct XInt8 {
  const int8_t* q = nullptr;
  const float* dx = nullptr;
  const float* sum = nullptr;
  int64_t k = 0, groups = 0;
};
XInt8 quantize_x_int8(const float* x, int64_t ldx, int64_t m, int64_t k, int gs, ThreadPool& pool);

// dst[s * 6 + ii] = the int8 quad x[i0 + ii, p0 + 4s .. p0 + 4s + 3]; rows ii >= mr are zero.
void pack_a_int8(int32_t* dst, const XInt8& x, int64_t i0, int mr, int64_t p0, int64_t kc);

// Bytes of one group in an int8 B sliver: gs/4 quads x 16 columns of 4 bytes, 16 scales,
// 16 biases.
constexpr int64_t group_bytes_int8(int gs) {
  return gs / 4 * kInt16SliverCols * 4 + 2 * kInt16SliverCols * 4;
}

// As pack_b_int16 with quads: byte e of column j's 32-bit lane at step s holds
// q[j, p0 + 4s + e] (0 .. 255, the unsigned operand of vpdpbusd).
void pack_b_int8(
    uint8_t* dst, const PackedQuantWeight& w, int64_t j0, int nr, int64_t p0, int64_t kc);

}  // namespace lmx::cpu::detail
