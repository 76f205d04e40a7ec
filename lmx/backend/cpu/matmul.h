// Dense matrix products on raw pointers: y = x @ W^T with f32/f16/bf16 weights
// (Linear layers: matvec for decode, blocked GEMM for prefill) and a general strided,
// batched f32 GEMM (attention-style products, either operand transposed via strides).
// Activations and outputs are f32. Sizes and strides are in elements. Arguments are
// trusted: core's op front ends validate shapes before calling these.
#pragma once

#include <cstdint>

#include "lmx/core/kernel_args.h"

namespace lmx {
class ThreadPool;
}  // namespace lmx

namespace lmx::cpu {

using kernels::DenseWeightView;
using kernels::GemmArgs;



// y[i, :] = x[i, :] @ W^T for i in [0, m): x [m, k] with row stride ldx, y [m, n] with
// row stride ldy (y is overwritten). m == 1 runs the bandwidth-bound matvec; larger m the
// packed, register-tiled GEMM. pool == nullptr uses ThreadPool::global().
void matmul_nt(const float* x,
               int64_t ldx,
               const DenseWeightView& w,
               float* y,
               int64_t ldy,
               int64_t m,
               ThreadPool* pool = nullptr);

// Scalar reference of matmul_nt (f32 accumulation in k order; double is not used so the
// reference stays the numerics the fast paths are compared against).
void matmul_nt_reference(
    const float* x, int64_t ldx, const DenseWeightView& w, float* y, int64_t ldy, int64_t m);


void gemm_f32(const GemmArgs& args, ThreadPool* pool = nullptr);
void gemm_f32_reference(const GemmArgs& args);

}  // namespace lmx::cpu
