// MLX's microscaling floating-point quantization modes (mxfp4, mxfp8, nvfp4) on raw
// pointers: the element and scale codes, quantize / dequantize as MLX does, and
// y = x @ dequant(W)^T read from the MLX layout as stored.
//
// Layout (QuantView with mode != affine): `w` uint32 [n, k*bits/32], the k elements of a
// row as one little-endian bit stream, lowest bits first (element j: bits [j*bits,
// (j+1)*bits)); `scales` u8 [n, k/group]; no biases. w[r, j] = scale(s[r, j/group]) *
// element(q[r, j]).
//   mxfp4: e2m1 elements (bits 4), e8m0 scales, group 32   (OCP MX v1.0)
//   mxfp8: e4m3 elements (bits 8), e8m0 scales, group 32   (OCP MX v1.0)
//   nvfp4: e2m1 elements (bits 4), e4m3 scales, group 16   (NVIDIA NVFP4, no tensor scale)
// Where MLX departs from the specifications, these follow MLX (its kernels decode every
// code to a number): e4m3 0x7F / 0xFF decode to +-480 (the OCP spec: NaN) and the e8m0
// code 0xFF to +inf (the spec: NaN); e8m0 0x00 is 2^-127.
#pragma once

#include <cstdint>

#include "lmx/core/kernel_args.h"

namespace lmx {
class ThreadPool;
}  // namespace lmx

namespace lmx::cpu {

using kernels::QuantView;

// The value of an e2m1 code (low 4 bits): sign, 2 exponent bits (bias 1), 1 mantissa bit.
float fp4_e2m1_value(uint8_t code);
// The value of an e4m3 code: sign, 4 exponent bits (bias 7), 3 mantissa bits.
float fp8_e4m3_value(uint8_t code);
// The value of an e8m0 code: 2^(code - 127).
float e8m0_value(uint8_t code);
// The scale a u8 code stands for in `mode` (e4m3 for nvfp4, e8m0 otherwise).
float fp_scale_value(QuantMode mode, uint8_t code);

// x rounded to the nearest e4m3 code, ties to even, saturating at +-448 (inf and NaN
// saturate too), as MLX's to_fp8 does.
uint8_t fp8_e4m3_encode(float x);

// Quantizes w [n, k] (contiguous f32) as mlx.core.quantize does on the CPU: per group,
// s = max|w| / (6 for fp4, 448 for fp8); nvfp4 stores e4m3(s) and divides by its value;
// mxfp4 / mxfp8 store e = round(log2 s) (0 when s == 0, clamped to [-127, 127]) as
// e + 127 and divide by 2^e; each quotient becomes the nearest e2m1 code (the first of the
// table +0, +0.5, ..., +6, -0, ..., -6 on ties) or its e4m3 code.
void quantize_fp(const float* w, int64_t n, int64_t k, QuantMode mode, uint32_t* out_w, uint8_t* out_scales);

// Rows [row_begin, row_end) of dequant(W) into out (row stride ldo floats):
// out = scale * element in f32 (exact: both factors are short floats).
void dequantize_fp(const QuantView& w, int64_t row_begin, int64_t row_end, float* out, int64_t ldo);

// Scalar reference: per output, sum over groups of scale * (sum of x * element) in f32.
void quantized_matmul_fp_reference(
    const float* x, int64_t ldx, const QuantView& w, float* y, int64_t ldy, int64_t m);

// y[i, :] = x[i, :] @ dequant(W)^T for i < m, on the MLX layout. Few rows run a matvec
// that decodes the codes in registers (AVX2); more rows dequantize blocks of W to f32 and
// run the dense GEMM on them.
void quantized_matmul_fp(const float* x,
                         int64_t ldx,
                         const QuantView& w,
                         float* y,
                         int64_t ldy,
                         int64_t m,
                         ThreadPool* pool = nullptr);

namespace detail {
// Rows [r0, r1) of the matvec for m rows of x (AVX2 + FMA + F16C; call only after
// cpu_features().use_avx2()).
void quantized_matvec_fp_avx2(
    const float* x, int64_t ldx, const QuantView& w, float* y, int64_t ldy, int64_t m, int64_t r0, int64_t r1);
}  // namespace detail

}  // namespace lmx::cpu
