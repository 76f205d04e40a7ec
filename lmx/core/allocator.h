// Per-device caching allocators with memory statistics: the counterpart of MLX's
// Memory API (active, peak, cache, cache limit, memory limit).
#pragma once

#include <cstddef>
#include <cstdint>

#include "lmx/core/device.h"

namespace lmx {

struct MemoryStats {
  size_t active_bytes = 0;  // handed out and not yet freed
  size_t peak_bytes = 0;    // high-water mark of active_bytes since the last reset
  size_t cache_bytes = 0;   // freed buffers kept for reuse
  size_t cache_limit = 0;   // cache is trimmed above this
  size_t memory_limit = 0;  // allocations beyond this throw OutOfMemory (0 = no limit)
};

class Allocator {
 public:
  virtual ~Allocator() = default;
  // Returns a buffer of at least `bytes` (aligned to 64 bytes on the CPU).
  // Throws OutOfMemory when the memory limit would be exceeded.
  virtual void* allocate(size_t bytes) = 0;
  virtual void deallocate(void* ptr, size_t bytes) = 0;
  virtual Device device() const = 0;

  virtual MemoryStats stats() const = 0;
  virtual void reset_peak() = 0;
  virtual void set_cache_limit(size_t bytes) = 0;
  virtual void set_memory_limit(size_t bytes) = 0;
  // Releases every cached (free) buffer to the system.
  virtual void clear_cache() = 0;
};

// The allocator of a device (created on first use). Throws Unsupported for devices
// this build has no backend for.
Allocator& allocator_for(Device device);

// Convenience: the statistics of the CPU allocator.
inline MemoryStats cpu_memory_stats() { return allocator_for(Device::cpu()).stats(); }

}  // namespace lmx
