// Dense matrix products on raw pointers: y = x @ W^T with f32/f16/bf16 weights
// (Linear layers: matvec for decode, blocked GEMM for prefill) and a general strided,
// batched f32 GEMM (attention-style products, either operand transposed via strides).
// Activations and outputs are f32. Sizes and strides are in elements. Arguments are
// trusted: core's op front ends validate shapes before calling these.
#pragma once

#include <cstdint>

#include "lmx/core/dtype.h"

namespace lmx::cpu {

class ThreadPool;

// A dense weight matrix W [n, k], row-major, row stride `ld` elements (>= k).
// dtype is f32, f16 or bf16.
struct DenseWeightView {
  const void* data = nullptr;
  Dtype dtype = Dtype::f32;
  int64_t n = 0;
  int64_t k = 0;
  int64_t ld = 0;
};

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

// C[b][i, j] = alpha * sum_p A[b][i, p] * B[b][p, j] + beta * C[b][i, j]
// for b in [0, batch). Element (i, p) of A is a[b * a_bs + i * a_rs + p * a_cs]; B and C
// likewise. A transposed operand is just swapped strides. beta == 0 never reads C (so C
// may hold garbage or NaN).
struct GemmArgs {
  int64_t m = 0, n = 0, k = 0;
  float alpha = 1.0f;
  float beta = 0.0f;
  const float* a = nullptr;
  int64_t a_rs = 0, a_cs = 1;
  const float* b = nullptr;
  int64_t b_rs = 0, b_cs = 1;
  float* c = nullptr;
  int64_t c_rs = 0, c_cs = 1;
  int64_t batch = 1;
  int64_t a_bs = 0, b_bs = 0, c_bs = 0;
};

void gemm_f32(const GemmArgs& args, ThreadPool* pool = nullptr);
void gemm_f32_reference(const GemmArgs& args);

}  // namespace lmx::cpu
