// Launchers of the element-wise CUDA kernels. Plain C++17 with no lmx includes, since
// nvcc compiles the .cu files in C++17 mode; cuda_backend.cpp wraps them with errors.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace lmx::cuda::detail {

// op: 0 add, 1 sub, 2 mul, 3 div. Asynchronous on the default stream.
cudaError_t launch_binary_f32(int op, const float* a, const float* b, float* out, int64_t n);

}  // namespace lmx::cuda::detail
