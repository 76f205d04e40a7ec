// f32 GEMMs with one thin side (m or n at most kThinMax): the products of low-rank
// adapters, x [tokens, in] @ A [in, r], g @ B^T, and their weight gradients A^T-like
// [in, tokens] @ [tokens, r]. cuBLAS's SGEMM tiles such a product into a few dozen
// blocks (an output of 8 columns), each looping over a long k; here each block reads a
// slice of the wide operand once, the thin operand's slice staged in shared memory, and
// a long k is split over blocks whose partial sums a second kernel adds in a fixed order
// (deterministic). Plain C++17, no lmx includes; asynchronous on `stream`.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "lmx/backend/cuda/launch_args.h"

namespace lmx::cuda::detail {

inline constexpr int64_t kThinMax = 16;

// Floats of scratch launch_thin_gemm needs for g (0: none), or -1 when the kernel does not
// take g: neither m nor n at most kThinMax, or the wide operand (A, or B^T when m is the
// thin side) has no unit stride.
int64_t thin_gemm_scratch_floats(const Gemm& g, int sm_count);
// C = alpha A B + beta C per batch (as launch_gemm_f32), with `scratch` of
// thin_gemm_scratch_floats(g) floats (null when that is 0).
cudaError_t launch_thin_gemm(const Gemm& g, int sm_count, float* scratch, cudaStream_t stream);

}  // namespace lmx::cuda::detail
