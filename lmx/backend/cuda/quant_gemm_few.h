// Few-row GEMMs over MLX affine 4 / 8-bit weights on the tensor cores (quant_gemm_few.cu):
// y [m, n] = x [m, k] W^T for 2..kFewRowsMax rows of x, the rows of a batched decode step,
// W with bf16 or f16 scales (bf16 and f16 models).
// x is rounded to bf16 once (as the quantized prefill GEMMs round it); W's codes are exact
// in bf16 and every product sums in f32, so the only roundings are x's and the sums':
// y[r, j] = sum_G scale[j, G] * (sum_{p in G} q[j, p] x[r, p]) + bias[j, G] * (sum_{p in G} x[r, p]).
// Before, these rows dequantized all of W to bf16 every step for a cuBLAS GEMM.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "lmx/backend/cuda/launch_args.h"

namespace lmx::cuda::detail {

constexpr int64_t kFewRowsMax = 64;

// Whether the kernel takes W at m rows (4 / 8 bits, groups of 32 / 64 / 128, 16-byte
// aligned rows). Launches nothing.
bool quant_gemm_few_fits(const Quant& w, int64_t m);
// Scratch the launch needs: x in bf16 (fragment order) and its group sums.
size_t quant_gemm_few_scratch_bytes(const Quant& w, int64_t m);
cudaError_t launch_quant_gemm_few(const float* x, int64_t ldx, int64_t m, const Quant& w, float* y, int64_t ldy,
                                  void* scratch, cudaStream_t stream);

}  // namespace lmx::cuda::detail
