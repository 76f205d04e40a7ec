#include "lmx/core/storage.h"

#include "lmx/core/allocator.h"

namespace lmx {

std::shared_ptr<Storage> Storage::allocate(size_t bytes, Device device) {
  void* p = allocator_for(device).allocate(bytes);
  return std::shared_ptr<Storage>(new Storage(p, bytes, device, nullptr));
}

std::shared_ptr<Storage> Storage::wrap(void* data, size_t bytes, Device device,
                                       std::shared_ptr<const void> owner) {
  if (!owner) owner = std::make_shared<int>(0);  // marks foreign memory
  return std::shared_ptr<Storage>(new Storage(data, bytes, device, std::move(owner)));
}

Storage::~Storage() {
  if (owner_ == nullptr) allocator_for(device_).deallocate(data_, nbytes_);
}

}  // namespace lmx
