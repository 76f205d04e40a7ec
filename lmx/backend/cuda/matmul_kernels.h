// Launchers of the CUDA matmul kernels: f32 GEMM over strided operands, x @ W^T with a
// dense (f32 / f16 / bf16) or MLX-quantized W, and the quantized weights' dequantize /
// quantize. Plain C++17, no lmx includes (launch_args.h); asynchronous on `stream`.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "lmx/backend/cuda/launch_args.h"

namespace lmx::cuda::detail {

// C = alpha * A @ B + beta * C per batch (kernels::GemmArgs); f32 accumulation.
cudaError_t launch_gemm_f32(const Gemm& g, cudaStream_t stream);
// y[i, :] = x[i, :] @ W^T for i < m; W [n, k] of w_dtype (f32/f16/bf16), row stride ld.
cudaError_t launch_matmul_nt(const float* x, int64_t ldx, const void* w, int w_dtype, int64_t n, int64_t k,
                             int64_t ld, float* y, int64_t ldy, int64_t m, cudaStream_t stream);
// The same with W MLX-quantized, dequantized on the fly exactly as dequantize does.
cudaError_t launch_quantized_matmul(const float* x, int64_t ldx, const Quant& w, float* y, int64_t ldy, int64_t m,
                                    cudaStream_t stream);
// Rows [r0, r1) of dequant(W) into out (row stride ldo): scale * q + bias in f32.
cudaError_t launch_dequantize(const Quant& w, int64_t r0, int64_t r1, float* out, int64_t ldo, cudaStream_t stream);
// Rows ids[0..count) of dequant(W) into out, the ids read on the device (checked by the caller);
// at most 65535 rows.
cudaError_t launch_dequantize_gather(const Quant& w, const int64_t* ids, int64_t count, float* out, int64_t ldo,
                                     cudaStream_t stream);
// The same rounded to bf16 (nearest even), for the bf16 tensor-core GEMM of a prefill;
// false, launching nothing, past 65535 rows or 2^30 columns (*err: the launch's error).
bool launch_dequantize_bf16(const Quant& w, int64_t r0, int64_t r1, uint16_t* out, int64_t ldo, cudaStream_t stream,
                            cudaError_t* err);
// Quantizes w [n, k] (contiguous f32) as mlx.core.quantize does (cpu::quantize_affine):
// out_w [n, k*bits/32], scales / biases [n, k/group] of scale_dtype.
cudaError_t launch_quantize_affine(const float* w, int64_t n, int64_t k, int bits, int group_size, uint32_t* out_w,
                                   void* out_scales, void* out_biases, int scale_dtype, cudaStream_t stream);

}  // namespace lmx::cuda::detail
