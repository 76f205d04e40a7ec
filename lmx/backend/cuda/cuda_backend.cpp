// Caching allocator over cudaMalloc: freed blocks are kept per size for reuse, since
// cudaMalloc/cudaFree synchronize the device and cost far more than a decode step's work.
#include <cuda_runtime.h>

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "lmx/backend/cuda/binary_kernels.h"
#include "lmx/backend/cuda/cuda_backend.h"
#include "lmx/core/error.h"

namespace lmx::cuda {
namespace {

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw Error(std::string("cuda: ") + what + ": " + cudaGetErrorString(e));
}

size_t round_size(size_t bytes) {
  constexpr size_t kGranule = 512;
  if (bytes < (size_t{1} << 20)) return (bytes + kGranule - 1) / kGranule * kGranule;
  constexpr size_t kLarge = size_t{2} << 20;
  return (bytes + kLarge - 1) / kLarge * kLarge;
}

class CudaAllocator final : public Allocator {
 public:
  explicit CudaAllocator(int index) : index_(index) {
    size_t free_b = 0, total = 0;
    check(cudaSetDevice(index_), "cudaSetDevice");
    check(cudaMemGetInfo(&free_b, &total), "cudaMemGetInfo");
    stats_.cache_limit = total / 4;
  }

  void* allocate(size_t bytes) override {
    size_t size = round_size(bytes == 0 ? 1 : bytes);
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = free_.find(size);
    if (it != free_.end() && !it->second.empty()) {
      void* p = it->second.back();
      it->second.pop_back();
      stats_.cache_bytes -= size;
      note(size);
      return p;
    }
    if (stats_.memory_limit != 0 && stats_.active_bytes + size > stats_.memory_limit) {
      trim(0);
      if (stats_.active_bytes + size > stats_.memory_limit) {
        throw OutOfMemory("cuda:" + std::to_string(index_) + " allocator: " + std::to_string(size) +
                          " bytes would exceed the memory limit");
      }
    }
    check(cudaSetDevice(index_), "cudaSetDevice");
    void* p = nullptr;
    if (cudaMalloc(&p, size) != cudaSuccess) {
      cudaGetLastError();
      trim(0);
      if (cudaMalloc(&p, size) != cudaSuccess) {
        cudaGetLastError();
        throw OutOfMemory("cuda:" + std::to_string(index_) + ": cudaMalloc of " +
                          std::to_string(size) + " bytes failed");
      }
    }
    note(size);
    return p;
  }

  void deallocate(void* ptr, size_t bytes) override {
    if (!ptr) return;
    size_t size = round_size(bytes == 0 ? 1 : bytes);
    std::lock_guard<std::mutex> lock(mutex_);
    stats_.active_bytes -= size;
    free_[size].push_back(ptr);
    stats_.cache_bytes += size;
    if (stats_.cache_bytes > stats_.cache_limit) trim(stats_.cache_limit);
  }

  Device device() const override { return Device::cuda(index_); }
  MemoryStats stats() const override {
    std::lock_guard<std::mutex> lock(mutex_);
    return stats_;
  }
  void reset_peak() override {
    std::lock_guard<std::mutex> lock(mutex_);
    stats_.peak_bytes = stats_.active_bytes;
  }
  void set_cache_limit(size_t bytes) override {
    std::lock_guard<std::mutex> lock(mutex_);
    stats_.cache_limit = bytes;
    trim(bytes);
  }
  void set_memory_limit(size_t bytes) override {
    std::lock_guard<std::mutex> lock(mutex_);
    stats_.memory_limit = bytes;
  }
  void clear_cache() override {
    std::lock_guard<std::mutex> lock(mutex_);
    trim(0);
  }

 private:
  void note(size_t size) {
    stats_.active_bytes += size;
    if (stats_.active_bytes > stats_.peak_bytes) stats_.peak_bytes = stats_.active_bytes;
  }
  void trim(size_t target) {
    for (auto it = free_.rbegin(); it != free_.rend() && stats_.cache_bytes > target; ++it) {
      while (!it->second.empty() && stats_.cache_bytes > target) {
        cudaFree(it->second.back());
        it->second.pop_back();
        stats_.cache_bytes -= it->first;
      }
    }
  }

  int index_;
  mutable std::mutex mutex_;
  MemoryStats stats_;
  std::map<size_t, std::vector<void*>> free_;
};

}  // namespace

int device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  return n;
}

Allocator& allocator(int index) {
  static std::mutex m;
  static std::vector<std::unique_ptr<CudaAllocator>>* all =
      new std::vector<std::unique_ptr<CudaAllocator>>();  // never destroyed (exit order)
  std::lock_guard<std::mutex> lock(m);
  int n = device_count();
  if (index < 0 || index >= n) {
    throw Unsupported("cuda:" + std::to_string(index) + " does not exist (" + std::to_string(n) +
                      " CUDA devices visible)");
  }
  if (all->size() < static_cast<size_t>(n)) all->resize(static_cast<size_t>(n));
  auto& slot = (*all)[static_cast<size_t>(index)];
  if (!slot) slot = std::make_unique<CudaAllocator>(index);
  return *slot;
}

void copy(void* dst, const void* src, size_t bytes, CopyKind kind, int device) {
  if (bytes == 0) return;
  check(cudaSetDevice(device), "cudaSetDevice");
  cudaMemcpyKind k = kind == CopyKind::host_to_device   ? cudaMemcpyHostToDevice
                     : kind == CopyKind::device_to_host ? cudaMemcpyDeviceToHost
                                                        : cudaMemcpyDeviceToDevice;
  check(cudaMemcpy(dst, src, bytes, k), "cudaMemcpy");
}

void binary_f32(BinaryKernel op, const float* a, const float* b, float* out, int64_t n, int device) {
  if (n <= 0) return;
  check(cudaSetDevice(device), "cudaSetDevice");
  check(detail::launch_binary_f32(static_cast<int>(op), a, b, out, n), "binary kernel launch");
  check(cudaDeviceSynchronize(), "binary kernel");
}

}  // namespace lmx::cuda
