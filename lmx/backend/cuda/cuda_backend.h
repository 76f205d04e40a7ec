// The CUDA backend (built with -DLMX_CUDA=ON): its entries of the backend table
// (lmx/core/backend.h, detail::cuda_backend()) are a caching device allocator, host <->
// device copies, the wired-memory pool (cuda_wired.h) and one kernel (f32 element-wise
// binary ops). Kernels grow here as the GPU path does.
#pragma once

namespace lmx::cuda {

// Number of visible CUDA devices (0 when there is no driver or device).
int device_count();

}  // namespace lmx::cuda
