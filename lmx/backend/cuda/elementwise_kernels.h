// Launchers of the element-wise CUDA kernels (plain C++17, no lmx includes; see
// launch_args.h). Each is asynchronous on `stream` and returns the launch's error.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "lmx/backend/cuda/launch_args.h"

namespace lmx::cuda::detail {

// Strided element-wise kernels with broadcasting and any dtype; op is the value of
// kernels::UnaryKernel / ArithmeticKernel / CompareKernel.
cudaError_t launch_copy(const Elementwise& a, cudaStream_t stream);
cudaError_t launch_unary(int op, const Elementwise& a, cudaStream_t stream);
cudaError_t launch_binary(int op, const Elementwise& a, cudaStream_t stream);
cudaError_t launch_compare(int op, const Elementwise& a, cudaStream_t stream);
cudaError_t launch_where(const Elementwise& a, cudaStream_t stream);
cudaError_t launch_fill(void* data, int dtype, int64_t n, double value, cudaStream_t stream);
cudaError_t launch_gather_rows(const void* src, int64_t row_bytes, const int64_t* ids, int64_t count, void* out,
                               cudaStream_t stream);

// x [rows, cols] f32 (row stride ldx) -> out [rows, cols] contiguous bf16, as launch_copy
// rounds it (round to nearest even, NaN kept).
cudaError_t launch_rows_to_bf16(const float* x, int64_t ldx, int64_t rows, int64_t cols, void* out,
                                cudaStream_t stream);
// Contiguous f32: op 0 add, 1 sub, 2 mul, 3 div.
cudaError_t launch_binary_f32(int op, const float* a, const float* b, float* out, int64_t n, cudaStream_t stream);
// y[r, :] += bias for r < rows (y [rows, n] contiguous).
cudaError_t launch_add_bias(float* y, int64_t rows, int64_t n, const float* bias, cudaStream_t stream);
// out[i] = act(gate[i]) * up[i], act the value of kernels::Activation.
cudaError_t launch_activation_mul(int act, const float* gate, const float* up, float* out, int64_t n,
                                  cudaStream_t stream);
// *result = the index std::max_element would pick in x[0, n) (NaNs passed over unless at 0).
cudaError_t launch_argmax_f32(const float* x, int64_t n, int64_t* result, cudaStream_t stream);

}  // namespace lmx::cuda::detail
