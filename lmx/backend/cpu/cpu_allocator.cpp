// The CPU caching allocator. Small buffers come from 64-byte aligned heap memory;
// buffers of 2 MiB and more are mmap'd with MADV_HUGEPAGE, since decode streams
// weights and activations and huge pages measurably raise read bandwidth here.
// Freed buffers are kept in size buckets for reuse up to the cache limit.
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <mutex>
#include <string>
#include <vector>

#include "lmx/backend/cpu/cpu_allocator.h"
#include "lmx/core/caching_allocator.h"
#include "lmx/base/error.h"

namespace lmx::cpu {
namespace {

constexpr size_t kAlign = 64;
constexpr size_t kHugeThreshold = size_t{2} << 20;

size_t physical_memory() {
  long pages = sysconf(_SC_PHYS_PAGES);
  long page = sysconf(_SC_PAGE_SIZE);
  return (pages > 0 && page > 0) ? static_cast<size_t>(pages) * static_cast<size_t>(page) : 0;
}

// Buckets round sizes so that freed buffers fit later requests of similar size.
size_t cpu_bucket_size(size_t bytes) {
  if (bytes <= 4096) return std::max<size_t>(kAlign, (bytes + kAlign - 1) / kAlign * kAlign);
  // Steps of 1/8 of the power of two below (1/32 from 2 MiB on, in whole pages), so a
  // freed buffer fits later requests of similar size while rounding wastes at most
  // 12.5% of a small buffer and 3% of a large one: large buffers are mostly weights and
  // KV caches, which live long, and every byte of their rounding stays resident.
  const size_t p = size_t{1} << (63 - __builtin_clzll(bytes));
  const size_t step = bytes < kHugeThreshold ? p / 8 : std::max<size_t>(p / 32, 4096);
  return (bytes + step - 1) / step * step;
}

class CpuAllocator final : public CachingAllocator {
 public:
  CpuAllocator() : CachingAllocator(physical_memory() / 4) {}
  ~CpuAllocator() override { release_all(); }
  Device device() const override { return Device::cpu(); }

 private:
  size_t bucket_size(size_t bytes) const override { return cpu_bucket_size(bytes); }
  void* system_allocate(size_t size) override {
    if (size >= kHugeThreshold) {
      void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (p == MAP_FAILED) return nullptr;
      madvise(p, size, MADV_HUGEPAGE);
      return p;
    }
    return std::aligned_alloc(kAlign, size);
  }
  void system_free(void* p, size_t size) override {
    if (size >= kHugeThreshold) {
      munmap(p, size);
    } else {
      std::free(p);
    }
  }
};

}  // namespace

Allocator& cpu_allocator() {
  // Never destroyed: tensors held by other statics may be freed after main returns.
  static CpuAllocator* cpu = new CpuAllocator();
  return *cpu;
}

}  // namespace lmx::cpu
