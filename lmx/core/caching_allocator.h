// The bookkeeping every device allocator shares: freed buffers kept per size bucket for
// reuse, statistics (active, peak, cache), the cache limit and the memory limit. A
// device supplies only how sizes round and how memory is obtained and returned.
// Header-only so backends below the core (lmx/backend/cuda) can derive from it.
#pragma once

#include <algorithm>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "lmx/core/allocator.h"
#include "lmx/base/error.h"

namespace lmx {

class CachingAllocator : public Allocator {
 public:
  void* allocate(size_t bytes) override {
    const size_t size = bucket_size(std::max<size_t>(bytes, 1));
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
        throw OutOfMemory(device().str() + " allocator: allocating " + std::to_string(size) +
                          " bytes would exceed the memory limit of " + std::to_string(stats_.memory_limit) +
                          " bytes (" + std::to_string(stats_.active_bytes) + " active)");
      }
    }
    void* p = system_allocate(size);
    if (p == nullptr) {
      release_cache_locked(0);
      p = system_allocate(size);
      if (p == nullptr) {
        throw OutOfMemory(device().str() + " allocator: the system refused " + std::to_string(size) + " bytes");
      }
    }
    note_active(size);
    return p;
  }

  void deallocate(void* ptr, size_t bytes) override {
    if (ptr == nullptr) return;
    const size_t size = bucket_size(std::max<size_t>(bytes, 1));
    std::lock_guard<std::mutex> lock(mutex_);
    stats_.active_bytes -= size;
    free_[size].push_back(ptr);
    stats_.cache_bytes += size;
    if (stats_.cache_bytes > stats_.cache_limit) release_cache_locked(stats_.cache_limit);
  }

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

 protected:
  explicit CachingAllocator(size_t cache_limit) { stats_.cache_limit = cache_limit; }
  // Rounds a request so freed buffers fit later requests of similar size.
  virtual size_t bucket_size(size_t bytes) const = 0;
  // nullptr when the device has no memory left.
  virtual void* system_allocate(size_t size) = 0;
  virtual void system_free(void* ptr, size_t size) = 0;
  // Derived destructors call this (system_free is theirs).
  void release_all() {
    std::lock_guard<std::mutex> lock(mutex_);
    release_cache_locked(0);
  }

 private:
  void note_active(size_t size) {
    stats_.active_bytes += size;
    stats_.peak_bytes = std::max(stats_.peak_bytes, stats_.active_bytes);
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

}  // namespace lmx
