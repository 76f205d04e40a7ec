// The wired limit on CUDA: device memory kept reserved for lmx in the device's default
// memory pool. The pool keeps freed memory up to its release threshold, so reserving N
// bytes means raising the threshold to N and allocating (then freeing) up to N once;
// lowering it trims the pool. Reached through the backend table (Backend::reserve_pool; DevicePoolBackend in
// lmx/generate/wired_memory_backend.h).
#pragma once

#include <cstddef>
#include <optional>
#include <string>

namespace lmx::cuda {

// Free device memory minus `reserve_bytes` (nullopt when the device cannot be queried).
std::optional<size_t> recommended_working_set(int device, size_t reserve_bytes);
// Bytes the device's default pool holds now (0 when it cannot be queried).
size_t reserved_pool_bytes(int device);
// Makes the pool hold `bytes` reserved; returns why it could not, or "" on success.
std::string reserve_pool(int device, size_t bytes);

}  // namespace lmx::cuda
