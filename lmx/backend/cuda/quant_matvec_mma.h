// The tensor-core decode matvec for MLX affine 4 / 8-bit W (group 32, 64 or 128; bf16,
// f16 or f32 scales) and one row of x: y[t] = x @ W[t]^T for the matrices of `t` in one
// launch, products of f32 x exact (x taken as three bf16 parts). Plain C++17.
#pragma once

#include <cuda_runtime.h>

#include "lmx/backend/cuda/launch_args.h"

namespace lmx::cuda::detail {

// Whether the kernel takes these `count` matrices (same bits, group, scale dtype and k;
// rows aligned for its loads; a device with tensor cores).
bool quant_mma_matvec_fits(const Quant* q, int count);
// x: k f32 values, 16-byte aligned; fills t.first_block. Call only where it fits.
// pro: x made through the input prologue as the block splits it (null: x as given).
cudaError_t launch_quant_mma_matvec(const float* x, QuantTargets& t, cudaStream_t stream,
                                    const XPrologue* pro = nullptr);

}  // namespace lmx::cuda::detail
