#include "lmx/backend/cuda/cublas_gemm.h"

#include <climits>
#include <string>

#include "lmx/base/error.h"

namespace lmx::cuda {
namespace {

void check(cublasStatus_t s, const char* what) {
  if (s != CUBLAS_STATUS_SUCCESS) {
    throw Error(std::string("cublas: ") + what + ": " + cublasGetStatusName(s) + " (" + cublasGetStatusString(s) + ")");
  }
}

bool fits_int(int64_t v) { return v >= 0 && v <= INT_MAX; }

// A row-major operand [rows, cols] with strides (rs, cs) as cuBLAS sees its transpose
// (column-major [cols, rows]): op N with ld = rs when cs == 1, op T with ld = cs when
// rs == 1. False when neither stride is 1 or the ld is too small for cuBLAS.
bool as_transposed(int64_t rows, int64_t cols, int64_t rs, int64_t cs, cublasOperation_t* op, int* ld) {
  if (cs == 1 && (rs >= cols || rows == 1) && fits_int(rs)) {
    *op = CUBLAS_OP_N;
    *ld = static_cast<int>(rs >= cols ? rs : cols);
    return *ld >= 1;
  }
  if (rs == 1 && (cs >= rows || cols == 1) && fits_int(cs)) {
    *op = CUBLAS_OP_T;
    *ld = static_cast<int>(cs >= rows ? cs : rows);
    return *ld >= 1;
  }
  return false;
}

}  // namespace

CublasGemm::CublasGemm(int device, cudaStream_t stream) : device_(device), stream_(stream) {}

CublasGemm::~CublasGemm() {
  if (handle_) cublasDestroy(handle_);
}

cublasHandle_t CublasGemm::handle() {
  if (!handle_) {
    check(cublasCreate(&handle_), "cublasCreate");
    check(cublasSetStream(handle_, stream_), "cublasSetStream");
    // Plain f32 arithmetic: no TF32 tensor-core rounding of the inputs.
    check(cublasSetMathMode(handle_, CUBLAS_DEFAULT_MATH), "cublasSetMathMode");
  }
  return handle_;
}

bool CublasGemm::sgemm(const kernels::GemmArgs& g) {
  if (g.c_cs != 1 || !fits_int(g.m) || !fits_int(g.n) || !fits_int(g.k) || !fits_int(g.batch) || g.k == 0) return false;
  if (g.c_rs < g.n && g.m > 1) return false;
  cublasOperation_t op_a, op_b;
  int lda, ldb;
  // Column-major: C^T [n, m] = B^T [n, k] A^T [k, m].
  if (!as_transposed(g.k, g.n, g.b_rs, g.b_cs, &op_b, &ldb) || !as_transposed(g.m, g.k, g.a_rs, g.a_cs, &op_a, &lda))
    return false;
  const int ldc = static_cast<int>(g.c_rs >= g.n ? g.c_rs : g.n);
  check(cublasSgemmStridedBatched(handle(), op_b, op_a, static_cast<int>(g.n), static_cast<int>(g.m),
                                  static_cast<int>(g.k), &g.alpha, g.b, ldb, g.b_bs, g.a, lda, g.a_bs, &g.beta, g.c,
                                  ldc, g.c_bs, static_cast<int>(g.batch)),
        "cublasSgemmStridedBatched");
  return true;
}

void CublasGemm::bf16_nt(const void* x_bf16, const void* w, int64_t n, int64_t k, int64_t ld, float* y, int64_t ldy,
                         int64_t m) {
  const float one = 1.0f, zero = 0.0f;
  // Column-major: y^T [n, m] = W [n, k] (stored as W^T [k, n], ld) x^T [k, m].
  check(cublasGemmEx(handle(), CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(n), static_cast<int>(m), static_cast<int>(k),
                     &one, w, CUDA_R_16BF, static_cast<int>(ld), x_bf16, CUDA_R_16BF, static_cast<int>(k), &zero, y,
                     CUDA_R_32F, static_cast<int>(ldy), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
        "cublasGemmEx (bf16)");
}

}  // namespace lmx::cuda
