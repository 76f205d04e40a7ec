// Vectorized decode-step matvecs (16-byte weight loads): dense f16 / bf16 W and
// MLX-quantized W of 4 or 8 bits, for up to kMaxVectorMatvecRows rows of x. Each launcher
// returns false, launching nothing, when the layout does not fit (odd k, unaligned rows,
// other dtypes or bits); the generic kernels of matmul_kernels.cu serve those. When it
// returns true, *err holds the launch's error code. Plain C++17, no lmx includes.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "lmx/backend/cuda/launch_args.h"

namespace lmx::cuda::detail {

constexpr int64_t kMaxVectorMatvecRows = 8;

// y[i, j] = x[i, :] . W[j, :] for i < m; W [n, k] f16 or bf16 (w_dtype), row stride ld.
bool launch_vector_matvec_dense(const float* x, int64_t ldx, const void* w, int w_dtype, int64_t n, int64_t k,
                                int64_t ld, float* y, int64_t ldy, int64_t m, cudaStream_t stream, cudaError_t* err);
// y[t] = x @ W[t]^T for the `count` (<= kMaxMatvecTargets) dense matrices w[t] over one
// x, in one launch. All must have the same dtype and k (false otherwise, launching nothing).
// pro: x made from x by the input prologue inside the launch (one row; false where it does
// not fit: k % 8, alignment, shared memory).
bool launch_vector_matvec_dense_targets(const float* x,
                                        int64_t ldx,
                                        const Dense* w,
                                        float* const* y,
                                        const int64_t* ldy,
                                        int count,
                                        int64_t m,
                                        cudaStream_t stream,
                                        cudaError_t* err,
                                        const XPrologue* pro = nullptr);
// The same with W MLX-quantized (affine, 4 or 8 bits).
bool launch_vector_matvec_quant(const float* x, int64_t ldx, const Quant& q, float* y, int64_t ldy, int64_t m,
                                cudaStream_t stream, cudaError_t* err);
// y[t] = x @ W[t]^T for the `count` (<= kMaxMatvecTargets) quantized matrices q[t] over
// one x, in one launch: one launch instead of one per projection of a decode step. All
// must have the same bits and k (false otherwise, launching nothing). pro: as above.
bool launch_vector_matvec_quant_targets(const float* x,
                                        int64_t ldx,
                                        const Quant* q,
                                        float* const* y,
                                        const int64_t* ldy,
                                        int count,
                                        int64_t m,
                                        cudaStream_t stream,
                                        cudaError_t* err,
                                        const XPrologue* pro = nullptr);

}  // namespace lmx::cuda::detail
