// The CPU caching allocator. Small buffers come from 64-byte aligned heap memory;
// buffers of 2 MiB and more are mmap'd with MADV_HUGEPAGE, since decode streams
// weights and activations and huge pages measurably raise read bandwidth here.
// Freed buffers are kept in size buckets for reuse up to the cache limit.
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "lmx/core/allocator.h"
#include "lmx/core/error.h"

#ifdef LMX_HAS_CUDA
#include "lmx/backend/cuda/cuda_backend.h"
#endif

namespace lmx {
namespace {

constexpr size_t kAlign = 64;
constexpr size_t kHugeThreshold = size_t{2} << 20;

size_t physical_memory() {
  long pages = sysconf(_SC_PHYS_PAGES);
  long page = sysconf(_SC_PAGE_SIZE);
  return (pages > 0 && page > 0) ? static_cast<size_t>(pages) * static_cast<size_t>(page) : 0;
}

// Buckets round sizes so that freed buffers fit later requests of similar size.
size_t bucket_size(size_t bytes) {
  if (bytes <= 4096) return std::max<size_t>(kAlign, (bytes + kAlign - 1) / kAlign * kAlign);
  if (bytes < kHugeThreshold) {
    // Round to 1/8 steps of the power of two below.
    size_t p = size_t{1} << (63 - __builtin_clzll(bytes));
    size_t step = p / 8;
    return (bytes + step - 1) / step * step;
  }
  return (bytes + kHugeThreshold - 1) / kHugeThreshold * kHugeThreshold;
}

class CpuAllocator final : public Allocator {
 public:
  CpuAllocator() { stats_.cache_limit = physical_memory() / 4; }
  ~CpuAllocator() override { clear_cache(); }

  void* allocate(size_t bytes) override {
    size_t size = bucket_size(std::max<size_t>(bytes, 1));
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = free_.find(size);
    if (it != free_.end() && !it->second.empty()) {
      void* p = it->second.back();
      it->second.pop_back();
      stats_.cache_bytes -= size;
      note_active(size);
      return p;
    }
    if (stats_.memory_limit != 0 && stats_.active_bytes + size > stats_.memory_limit) {
      release_cache_locked(0);
      if (stats_.active_bytes + size > stats_.memory_limit) {
        throw OutOfMemory("cpu allocator: allocating " + std::to_string(size) +
                          " bytes would exceed the memory limit of " +
                          std::to_string(stats_.memory_limit) + " bytes (" +
                          std::to_string(stats_.active_bytes) + " active)");
      }
    }
    void* p = system_allocate(size);
    if (p == nullptr) {
      release_cache_locked(0);
      p = system_allocate(size);
      if (p == nullptr) {
        throw OutOfMemory("cpu allocator: the system refused " + std::to_string(size) + " bytes");
      }
    }
    note_active(size);
    return p;
  }

  void deallocate(void* ptr, size_t bytes) override {
    if (ptr == nullptr) return;
    size_t size = bucket_size(std::max<size_t>(bytes, 1));
    std::lock_guard<std::mutex> lock(mutex_);
    stats_.active_bytes -= size;
    free_[size].push_back(ptr);
    stats_.cache_bytes += size;
    if (stats_.cache_bytes > stats_.cache_limit) release_cache_locked(stats_.cache_limit);
  }

  Device device() const override { return Device::cpu(); }

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
    release_cache_locked(bytes);
  }
  void set_memory_limit(size_t bytes) override {
    std::lock_guard<std::mutex> lock(mutex_);
    stats_.memory_limit = bytes;
  }
  void clear_cache() override {
    std::lock_guard<std::mutex> lock(mutex_);
    release_cache_locked(0);
  }

 private:
  void note_active(size_t size) {
    stats_.active_bytes += size;
    stats_.peak_bytes = std::max(stats_.peak_bytes, stats_.active_bytes);
  }

  static void* system_allocate(size_t size) {
    if (size >= kHugeThreshold) {
      void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (p == MAP_FAILED) return nullptr;
      madvise(p, size, MADV_HUGEPAGE);
      return p;
    }
    return std::aligned_alloc(kAlign, size);
  }
  static void system_free(void* p, size_t size) {
    if (size >= kHugeThreshold) {
      munmap(p, size);
    } else {
      std::free(p);
    }
  }

  // Frees cached buffers, largest first, until the cache holds at most `target` bytes.
  void release_cache_locked(size_t target) {
    for (auto it = free_.rbegin(); it != free_.rend() && stats_.cache_bytes > target; ++it) {
      auto& list = it->second;
      while (!list.empty() && stats_.cache_bytes > target) {
        system_free(list.back(), it->first);
        list.pop_back();
        stats_.cache_bytes -= it->first;
      }
    }
  }

  mutable std::mutex mutex_;
  MemoryStats stats_;
  std::map<size_t, std::vector<void*>> free_;
};

}  // namespace

Allocator& allocator_for(Device device) {
  if (device.is_cpu()) {
    // Never destroyed: tensors held by other statics may be freed after main returns.
    static CpuAllocator* cpu = new CpuAllocator();
    return *cpu;
  }
#ifdef LMX_HAS_CUDA
  if (device.is_cuda()) return cuda::allocator(device.index);
#endif
  throw Unsupported("device " + device.str() +
                    " is not available in this build of lmx (build with -DLMX_CUDA=ON)");
}

}  // namespace lmx
