// NCCL collectives among the GPUs of this process (docs/tensor_parallel.md), one rank per
// device, each rank's operations queued on its device's stream (no host wait): the CUDA
// backend's Backend::make_collectives, which lmx::DeviceGroup turns into communicators.
// NCCL is loaded when a group is made (dlopen of libnccl.so.2), so a binary built here runs
// where NCCL is absent until tensor parallelism is asked for; then the error says what is
// missing. NVLink multicast stays as the environment sets it (NCCL_NVLS_ENABLE).
#pragma once

#include <memory>
#include <vector>

#include "lmx/core/backend.h"

namespace lmx::cuda {

// Distinct CUDA device indices, rank r on devices[r]; throws InvalidArgument naming a
// device that does not exist or is named twice.
std::unique_ptr<DeviceCollectives> make_nccl_collectives(const std::vector<int>& devices);

}  // namespace lmx::cuda
