// The shared memory block behind one or more tensors: owned allocator memory, or
// foreign memory (an mmap'd weight file) kept alive through an owner handle.
#pragma once

#include <cstddef>
#include <memory>

#include "lmx/core/device.h"

namespace lmx {

class Storage {
 public:
  // Allocates `bytes` from the device's caching allocator.
  static std::shared_ptr<Storage> allocate(size_t bytes, Device device);
  // Wraps memory owned elsewhere without copying; `owner` keeps it alive.
  static std::shared_ptr<Storage> wrap(void* data, size_t bytes, Device device,
                                       std::shared_ptr<const void> owner);

  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
  ~Storage();

  void* data() const { return data_; }
  size_t nbytes() const { return nbytes_; }
  Device device() const { return device_; }
  // True for wrapped (e.g. memory-mapped) storage that must not be written.
  bool is_foreign() const { return owner_ != nullptr; }

 private:
  Storage(void* data, size_t bytes, Device device, std::shared_ptr<const void> owner)
      : data_(data), nbytes_(bytes), device_(device), owner_(std::move(owner)) {}

  void* data_;
  size_t nbytes_;
  Device device_;
  std::shared_ptr<const void> owner_;  // null: memory belongs to the device allocator
};

}  // namespace lmx
