// Caching allocator over cudaMalloc: freed blocks are kept per size for reuse, since
// cudaMalloc/cudaFree synchronize the device and cost far more than a decode step's work.
#include <cuda_runtime.h>

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "lmx/backend/cuda/binary_kernels.h"
#include "lmx/backend/cuda/cuda_backend.h"
#include "lmx/backend/cuda/cuda_wired.h"
#include "lmx/core/backend.h"
#include "lmx/core/caching_allocator.h"
#include "lmx/base/error.h"

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

size_t total_device_memory(int index) {
  size_t free_b = 0, total = 0;
  check(cudaSetDevice(index), "cudaSetDevice");
  check(cudaMemGetInfo(&free_b, &total), "cudaMemGetInfo");
  return total;
}

class CudaAllocator final : public CachingAllocator {
 public:
  explicit CudaAllocator(int index) : CachingAllocator(total_device_memory(index) / 4), index_(index) {}
  ~CudaAllocator() override { release_all(); }
  Device device() const override { return Device::cuda(index_); }

 private:
  size_t bucket_size(size_t bytes) const override { return round_size(bytes); }
  void* system_allocate(size_t size) override {
    check(cudaSetDevice(index_), "cudaSetDevice");
    void* p = nullptr;
    if (cudaMalloc(&p, size) != cudaSuccess) {
      cudaGetLastError();  // clear the sticky error; the caller reports OutOfMemory
      return nullptr;
    }
    return p;
  }
  void system_free(void* p, size_t) override { cudaFree(p); }

  int index_;
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

class CudaBackend final : public Backend {
 public:
  explicit CudaBackend(int index) : index_(index), allocator_(index) {}
  Device device() const override { return Device::cuda(index_); }
  Allocator& allocator() override { return allocator_; }

  void copy_bytes(void* dst, const void* src, size_t bytes, CopyDirection direction) override {
    if (bytes == 0) return;
    check(cudaSetDevice(index_), "cudaSetDevice");
    cudaMemcpyKind k = direction == CopyDirection::host_to_device   ? cudaMemcpyHostToDevice
                       : direction == CopyDirection::device_to_host ? cudaMemcpyDeviceToHost
                                                                    : cudaMemcpyDeviceToDevice;
    check(cudaMemcpy(dst, src, bytes, k), "cudaMemcpy");
  }

  void binary_f32(BinaryKernel op, const float* a, const float* b, float* out, int64_t n) override {
    if (n <= 0) return;
    check(cudaSetDevice(index_), "cudaSetDevice");
    check(detail::launch_binary_f32(static_cast<int>(op), a, b, out, n), "binary kernel launch");
    check(cudaDeviceSynchronize(), "binary kernel");
  }

  std::optional<size_t> recommended_working_set(size_t reserve_bytes) override {
    return cuda::recommended_working_set(index_, reserve_bytes);
  }
  size_t reserved_pool_bytes() override { return cuda::reserved_pool_bytes(index_); }
  std::string reserve_pool(size_t bytes) override { return cuda::reserve_pool(index_, bytes); }

 private:
  int index_;
  CudaAllocator allocator_;
};

}  // namespace lmx::cuda

namespace lmx::detail {

Backend& cuda_backend(int index) {
  static std::mutex m;
  // Never destroyed: device buffers held by other statics may be freed after main returns.
  static auto* all = new std::vector<std::unique_ptr<cuda::CudaBackend>>();
  std::lock_guard<std::mutex> lock(m);
  const int n = cuda::device_count();
  if (index < 0 || index >= n) {
    throw Unsupported("cuda:" + std::to_string(index) + " does not exist (" + std::to_string(n) +
                      " CUDA devices visible)");
  }
  if (all->size() < static_cast<size_t>(n)) all->resize(static_cast<size_t>(n));
  auto& slot = (*all)[static_cast<size_t>(index)];
  if (!slot) slot = std::make_unique<cuda::CudaBackend>(index);
  return *slot;
}

}  // namespace lmx::detail
