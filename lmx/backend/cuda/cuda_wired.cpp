#include "lmx/backend/cuda/cuda_wired.h"

#include <cuda_runtime.h>

#include <cstdint>
#include <vector>

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
  // Allocate the missing bytes and free them: the pool keeps them (below the threshold).
  // Memory the pool already holds free serves allocations first, so blocks stay
  // allocated until the pool's reservation has grown to `bytes`, then all are freed.
  std::vector<void*> blocks;
  std::string why;
  for (size_t reserved = held; reserved < bytes && why.empty() && blocks.size() < 64;) {
    void* block = nullptr;
    why = failure(cudaMallocAsync(&block, bytes - reserved, cudaStreamPerThread), "cudaMallocAsync");
    if (!why.empty()) {
      why += " (reserving " + std::to_string(bytes - reserved) + " more bytes)";
      break;
    }
    blocks.push_back(block);
    reserved = reserved_pool_bytes(device);
  }
  for (void* b : blocks) {
    if (auto e = failure(cudaFreeAsync(b, cudaStreamPerThread), "cudaFreeAsync"); !e.empty() && why.empty()) why = e;
  }
  if (auto e = failure(cudaStreamSynchronize(cudaStreamPerThread), "cudaStreamSynchronize"); why.empty()) why = e;
  if (!why.empty()) {
    uint64_t held_threshold = held;  // a failed reservation leaves the pool as it was
    cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &held_threshold);
    cudaMemPoolTrimTo(pool, held);
  }
  return why;
}

}  // namespace lmx::cuda
