// Naive column-major BLAS following cuBLAS's documented semantics (checks the callers' op / ld mapping).
#pragma once
#include <cstdint>
#include "cuda_runtime.h"
enum cublasStatus_t { CUBLAS_STATUS_SUCCESS = 0, CUBLAS_STATUS_INVALID_VALUE = 7 };
enum cublasOperation_t { CUBLAS_OP_N, CUBLAS_OP_T };
enum cublasMath_t { CUBLAS_DEFAULT_MATH };
enum cudaDataType { CUDA_R_32F, CUDA_R_16BF, CUDA_R_16F };
enum cublasComputeType_t { CUBLAS_COMPUTE_32F };
enum cublasGemmAlgo_t { CUBLAS_GEMM_DEFAULT };
struct cublasContext {};
using cublasHandle_t = cublasContext*;
inline cublasStatus_t cublasCreate(cublasHandle_t* h) { *h = new cublasContext; return CUBLAS_STATUS_SUCCESS; }
inline cublasStatus_t cublasDestroy(cublasHandle_t h) { delete h; return CUBLAS_STATUS_SUCCESS; }
inline cublasStatus_t cublasSetStream(cublasHandle_t, cudaStream_t) { return CUBLAS_STATUS_SUCCESS; }
inline cublasStatus_t cublasSetMathMode(cublasHandle_t, cublasMath_t) { return CUBLAS_STATUS_SUCCESS; }
inline const char* cublasGetStatusName(cublasStatus_t) { return "CUBLAS_STATUS"; }
inline const char* cublasGetStatusString(cublasStatus_t) { return "emulated"; }
namespace emu {
inline float load(const void* p, cudaDataType t, int64_t i) {
  if (t == CUDA_R_32F) return static_cast<const float*>(p)[i];
  uint16_t h = static_cast<const uint16_t*>(p)[i];
  return __uint_as_float(static_cast<uint32_t>(h) << 16);
}
// op(A) is m x k, op(B) k x n, C m x n, all column-major.
inline cublasStatus_t gemm(cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k, float alpha, const void* A,
                           cudaDataType at, int lda, const void* B, cudaDataType bt, int ldb, float beta, float* C,
                           int ldc) {
  const int a_rows = ta == CUBLAS_OP_N ? m : k, b_rows = tb == CUBLAS_OP_N ? k : n;
  if (lda < std::max(1, a_rows) || ldb < std::max(1, b_rows) || ldc < std::max(1, m)) return CUBLAS_STATUS_INVALID_VALUE;
  for (int i = 0; i < m; ++i)
    for (int j = 0; j < n; ++j) {
      float acc = 0;
      for (int p = 0; p < k; ++p) {
        float a = ta == CUBLAS_OP_N ? load(A, at, i + static_cast<int64_t>(p) * lda) : load(A, at, p + static_cast<int64_t>(i) * lda);
        float b = tb == CUBLAS_OP_N ? load(B, bt, p + static_cast<int64_t>(j) * ldb) : load(B, bt, j + static_cast<int64_t>(p) * ldb);
        acc += a * b;
      }
      float& c = C[i + static_cast<int64_t>(j) * ldc];
      c = beta == 0.0f ? alpha * acc : alpha * acc + beta * c;
    }
  return CUBLAS_STATUS_SUCCESS;
}
}  // namespace emu
inline cublasStatus_t cublasSgemmStridedBatched(cublasHandle_t, cublasOperation_t ta, cublasOperation_t tb, int m, int n,
                                                int k, const float* alpha, const float* A, int lda, long long sa,
                                                const float* B, int ldb, long long sb, const float* beta, float* C,
                                                int ldc, long long sc, int batch) {
  for (int b = 0; b < batch; ++b) {
    auto s = emu::gemm(ta, tb, m, n, k, *alpha, A + b * sa, CUDA_R_32F, lda, B + b * sb, CUDA_R_32F, ldb, *beta, C + b * sc, ldc);
    if (s != CUBLAS_STATUS_SUCCESS) return s;
  }
  return CUBLAS_STATUS_SUCCESS;
}
inline cublasStatus_t cublasGemmEx(cublasHandle_t, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                                   const void* alpha, const void* A, cudaDataType at, int lda, const void* B,
                                   cudaDataType bt, int ldb, const void* beta, void* C, cudaDataType, int ldc,
                                   cublasComputeType_t, cublasGemmAlgo_t) {
  return emu::gemm(ta, tb, m, n, k, *static_cast<const float*>(alpha), A, at, lda, B, bt, ldb,
                   *static_cast<const float*>(beta), static_cast<float*>(C), ldc);
}
