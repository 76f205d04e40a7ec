#include "lmx/backend/cuda/cuda_wired.h"

#include <cuda_runtime.h>

#include <cstdint>

namespace lmx::cuda {
namespace {

// "" on success, else the call and CUDA's reason (the sticky error is cleared).
std::string failure(cudaError_t e, const char* what) {
  if (e == cudaSuccess) return "";
  cudaGetLastError();
  return std::string(what) + ": " + cudaGetErrorString(e);
}

cudaError_t default_pool(int device, cudaMemPool_t* pool) {
  const cudaError_t e = cudaSetDevice(device);
  return e != cudaSuccess ? e : cudaDeviceGetDefaultMemPool(pool, device);
}

}  // namespace

std::optional<size_t> recommended_working_set(int device, size_t reserve_bytes) {
  size_t free_bytes = 0, total = 0;
  if (!failure(cudaSetDevice(device), "cudaSetDevice").empty() ||
      !failure(cudaMemGetInfo(&free_bytes, &total), "cudaMemGetInfo").empty()) {
    return std::nullopt;
  }
  return free_bytes > reserve_bytes ? free_bytes - reserve_bytes : 0;
}

size_t reserved_pool_bytes(int device) {
  cudaMemPool_t pool{};
  uint64_t held = 0;
  if (!failure(default_pool(device, &pool), "cudaDeviceGetDefaultMemPool").empty() ||
      !failure(cudaMemPoolGetAttribute(pool, cudaMemPoolAttrReservedMemCurrent, &held),
               "cudaMemPoolGetAttribute")
           .empty()) {
    return 0;
  }
  return static_cast<size_t>(held);
}

std::string reserve_pool(int device, size_t bytes) {
  cudaMemPool_t pool{};
  if (auto why = failure(default_pool(device, &pool), "cudaDeviceGetDefaultMemPool"); !why.empty())
    return why;
  uint64_t threshold = bytes;
  if (auto why = failure(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &threshold),
                         "cudaMemPoolSetAttribute(release threshold)");
      !why.empty()) {
    return why;
  }
  const size_t held = reserved_pool_bytes(device);
  if (bytes <= held) return failure(cudaMemPoolTrimTo(pool, bytes), "cudaMemPoolTrimTo");
  // One allocation of the missing bytes, freed at once: the pool keeps it (below the threshold).
  void* block = nullptr;
  if (auto why =
          failure(cudaMallocAsync(&block, bytes - held, cudaStreamPerThread), "cudaMallocAsync");
      !why.empty()) {
    return why + " (reserving " + std::to_string(bytes - held) + " more bytes)";
  }
  if (auto why = failure(cudaFreeAsync(block, cudaStreamPerThread), "cudaFreeAsync"); !why.empty())
    return why;
  return failure(cudaStreamSynchronize(cudaStreamPerThread), "cudaStreamSynchronize");
}

}  // namespace lmx::cuda
