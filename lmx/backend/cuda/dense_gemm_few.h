// Few-row GEMMs over dense bf16 weights on the tensor cores (dense_gemm_few.cu): y [m, n] =
// x [m, k] W^T for 9..kDenseFewRowsMax rows of x already rounded to bf16 (the rows of a batched
// decode step), f32 sums. A warp owns 16 rows of W and streams them past every row of x
// once, as the quantized few-row GEMM does (quant_gemm_few.h). Off by default
// (LMX_CUDA_DENSE_FEW_ROWS=1): on an H100 it made `-b 32` bf16 decode slower than cuBLAS
// (5,318-5,593 against 7,109-7,165 tok/s, session 17, docs/performance.md).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "lmx/backend/cuda/launch_args.h"

namespace lmx::cuda::detail {

constexpr int64_t kDenseFewRowsMax = 64;

// Whether the kernel takes bf16 W at m rows (k a multiple of 32, 16-byte aligned rows).
// Launches nothing.
bool dense_gemm_few_fits(const Dense& w, int64_t m);
// xb: m rows of k bf16 values, contiguous and 16-byte aligned.
cudaError_t launch_dense_gemm_few(const uint16_t* xb, int64_t m, const Dense& w, float* y, int64_t ldy,
                                  cudaStream_t stream);

}  // namespace lmx::cuda::detail
