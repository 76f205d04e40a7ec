// The cuBLAS side of the CUDA matmuls, for row counts past the matvec kernel's: f32
// GEMMs whose operands cuBLAS can describe (one unit stride per matrix) as SGEMM (f32
// math, no TF32), and x @ W^T for bf16 W as a bf16 x bf16 -> f32 GEMM with x rounded to
// bf16 once per call (what MLX does for bf16 models; ~3e-3 relative per input element).
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "lmx/core/kernel_args.h"

namespace lmx::cuda {

class CublasGemm {
 public:
  CublasGemm(int device, cudaStream_t stream);
  ~CublasGemm();
  CublasGemm(const CublasGemm&) = delete;
  CublasGemm& operator=(const CublasGemm&) = delete;

  // C = alpha A B + beta C per batch; false (nothing queued) when a layout or size does
  // not fit cuBLAS's (then the caller's own kernel runs).
  bool sgemm(const kernels::GemmArgs& g);
  // y [m, n] (row stride ldy) = x_bf16 [m, k] (contiguous) @ W^T, W bf16 [n, k] (row stride ld).
  void bf16_nt(const void* x_bf16, const void* w, int64_t n, int64_t k, int64_t ld, float* y, int64_t ldy,
               int64_t m);

 private:
  cublasHandle_t handle();

  int device_;
  cudaStream_t stream_;
  cublasHandle_t handle_ = nullptr;
};

}  // namespace lmx::cuda
