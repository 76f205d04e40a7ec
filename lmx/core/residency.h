// Memory kept resident in RAM (mlock): what the wired limit means on the CPU. Owners of
// large buffers (a model's weights, the KV caches of running work) register the regions
// they hold; pin(limit) locks them in a fixed order (weights first, then KV caches, each
// class in registration order) until `limit` bytes are locked and unlocks the rest.
// Only the wired-memory manager (lmx/generate/wired_memory.h) sets the limit.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace lmx::residency {

// Pin order: lower classes first.
enum class RegionClass : int { weights = 0, kv_cache = 1 };

struct Region {
  const void* data = nullptr;
  size_t bytes = 0;
};

struct PinResult {
  size_t limit = 0;   // bytes the caller allowed
  size_t wanted = 0;  // page-rounded bytes of every registered region
  size_t pinned = 0;  // bytes locked now
  std::string error;  // empty when every region within the limit was locked
  bool ok() const { return error.empty(); }
};

class RegionRegistry {
 public:
  // The registry of this process (what the shared wired-memory manager drives).
  static RegionRegistry& global();
  RegionRegistry() = default;
  ~RegionRegistry();
  RegionRegistry(const RegionRegistry&) = delete;
  RegionRegistry& operator=(const RegionRegistry&) = delete;

  // A registered set of regions; dropping it unlocks them (then pins the others again
  // within the limit). The owner must drop or update it before freeing the memory.
  class Handle {
   public:
    Handle() = default;
    Handle(Handle&& o) noexcept : registry_(std::exchange(o.registry_, nullptr)), id_(o.id_) {}
    Handle& operator=(Handle&& o) noexcept;
    Handle(const Handle&) = delete;
    Handle& operator=(const Handle&) = delete;
    ~Handle() { reset(); }
    // Replaces the regions (a KV cache that grew); re-pins only when they changed.
    void update(std::vector<Region> regions);
    void reset();
    bool active() const { return registry_ != nullptr; }

   private:
    friend class RegionRegistry;
    Handle(RegionRegistry* r, uint64_t id) : registry_(r), id_(id) {}
    RegionRegistry* registry_ = nullptr;
    uint64_t id_ = 0;
  };

  [[nodiscard]] Handle add(RegionClass cls, std::vector<Region> regions);
  // Sets the limit and locks regions in order until it is reached; unlocks the rest.
  // A failed mlock (RLIMIT_MEMLOCK, no memory) stops there and is reported, never thrown.
  PinResult pin(size_t limit);
  size_t limit() const;
  size_t pinned_bytes() const;
  // Page-rounded bytes of every registered region (what an unlimited pin would lock).
  size_t registered_bytes() const;

 private:
  struct Entry {
    RegionClass cls;
    std::vector<Region> regions;
  };
  using Intervals = std::vector<std::pair<uintptr_t, uintptr_t>>;  // [begin, end), sorted, disjoint
  void remove(uint64_t id);
  void update(uint64_t id, std::vector<Region> regions);
  PinResult repin_locked();

  mutable std::mutex mutex_;
  std::map<uint64_t, Entry> entries_;  // ids grow with registration order
  uint64_t next_id_ = 1;
  size_t limit_ = 0;
  Intervals locked_;
};

// VmLck of this process (/proc/self/status), in bytes.
size_t locked_bytes();
// The RLIMIT_MEMLOCK soft limit in bytes (nullopt: unlimited).
std::optional<size_t> memlock_limit();
// Installed RAM in bytes.
size_t physical_memory();
// MemAvailable from /proc/meminfo in bytes (what can be allocated without swapping).
size_t available_memory();

}  // namespace lmx::residency
