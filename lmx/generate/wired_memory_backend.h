// What the wired limit does on each device, and the regions a generation asks to keep
// resident. CPU: the limit is how many bytes of registered regions stay mlock'ed
// (weights first, then the KV caches of running work); the recommended working set is
// physical RAM minus a reserve. CUDA (when built): the limit is the size of the device
// memory pool kept reserved for lmx; the recommended working set is free device memory
// minus a reserve.
#pragma once

#include <memory>
#include <vector>

#include "lmx/core/device.h"
#include "lmx/core/residency.h"
#include "lmx/generate/wired_memory.h"
#include "lmx/nn/kv_cache.h"
#include "lmx/nn/module.h"

namespace lmx::generate {

constexpr size_t kDefaultWiredReserve = size_t{2} << 30;  // left to the OS and other processes

class CpuResidencyBackend : public WiredBackend {
 public:
  explicit CpuResidencyBackend(
      residency::RegionRegistry& registry = residency::RegionRegistry::global(),
      size_t reserve_bytes = kDefaultWiredReserve)
      : registry_(registry), reserve_(reserve_bytes) {}
  std::string name() const override { return "cpu mlock"; }
  size_t current_limit() override { return registry_.limit(); }
  std::string apply(size_t limit) override { return registry_.pin(limit).error; }
  std::optional<size_t> recommended_working_set() override;

 private:
  residency::RegionRegistry& registry_;
  size_t reserve_;
};

// A device with its own memory (CUDA): the limit is the device memory pool its backend
// keeps reserved (Backend::reserve_pool). Devices without a pool answer apply() with why.
class DevicePoolBackend : public WiredBackend {
 public:
  explicit DevicePoolBackend(Device device, size_t reserve_bytes = size_t{1} << 30)
      : device_(device), reserve_(reserve_bytes) {}
  std::string name() const override { return device_.str() + " memory pool"; }
  size_t current_limit() override;
  std::string apply(size_t limit) override;
  std::optional<size_t> recommended_working_set() override;

 private:
  Device device_;
  size_t reserve_;
};

// The backend of WiredMemoryManager::shared(): CPU residency over the global registry.
std::shared_ptr<WiredBackend> make_default_wired_backend();

// The memory a model's forward pass reads, once each: prepared quantized matrices (their
// stored originals are then skipped), then every other CPU parameter. `mapped_bytes`
// (optional) receives the part that is memory-mapped from checkpoint files.
std::vector<residency::Region> weight_regions(nn::Module& model, size_t* mapped_bytes = nullptr);
// The buffers behind the caches' state (CPU only).
std::vector<residency::Region> kv_regions(const nn::KVCacheList& caches);
size_t region_bytes(const std::vector<residency::Region>& regions);

}  // namespace lmx::generate
