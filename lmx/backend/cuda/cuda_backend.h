// The CUDA backend (built with -DLMX_CUDA=ON): its entries of the backend table
// (lmx/core/backend.h, detail::cuda_backend()) are a caching device allocator, copies,
// the wired-memory pool (cuda_wired.h) and the kernels of every table entry
// (elementwise_kernels.h, matmul_kernels.h, nn_kernels.h, attention_kernels.h), queued on
// one stream per device.
#pragma once

namespace lmx::cuda {

// Number of visible CUDA devices (0 when there is no driver or device).
int device_count();
// The stream device `index`'s work is queued on (a cudaStream_t), its backend made if needed.
void* device_stream(int index);

}  // namespace lmx::cuda
