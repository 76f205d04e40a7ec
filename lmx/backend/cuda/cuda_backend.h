// The CUDA backend (built with -DLMX_CUDA=ON). For now: a caching device allocator,
// host <-> device copies and one kernel (f32 element-wise binary ops), so the core's
// device plumbing is exercised end to end. Kernels grow here as the GPU path does.
#pragma once

#include <cstddef>
#include <cstdint>

#include "lmx/core/allocator.h"

namespace lmx::cuda {

// Number of visible CUDA devices (0 when there is no driver or device).
int device_count();
// The caching allocator of device `index` (throws Unsupported when it does not exist).
Allocator& allocator(int index);

enum class CopyKind { host_to_device, device_to_host, device_to_device };
void copy(void* dst, const void* src, size_t bytes, CopyKind kind, int device);

enum class BinaryKernel { add, sub, mul, div };
// out[i] = a[i] op b[i] for contiguous f32 arrays on `device`; synchronizes.
void binary_f32(BinaryKernel op, const float* a, const float* b, float* out, int64_t n, int device);

}  // namespace lmx::cuda
