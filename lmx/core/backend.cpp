#include "lmx/core/backend.h"

namespace lmx {

Backend& backend_for(Device device) {
  if (device.is_cpu()) return detail::cpu_backend();
#ifdef LMX_HAS_CUDA
  if (device.is_cuda()) return detail::cuda_backend(device.index);
#endif
  throw Unsupported("device " + device.str() +
                    " is not available in this build of lmx (build with -DLMX_CUDA=ON)");
}

std::unique_ptr<DeviceCollectives> Backend::make_collectives(const std::vector<int>& devices) {
  (void)devices;
  throw Unsupported("tensor parallel: no group of ranks on " + device().str() + " devices in this build");
}

bool built_with_cuda() {
#ifdef LMX_HAS_CUDA
  return true;
#else
  return false;
#endif
}

Allocator& allocator_for(Device device) { return backend_for(device).allocator(); }

Device common_device(const char* op, std::initializer_list<Device> devices) {
  const Device first = devices.size() ? *devices.begin() : Device::cpu();
  for (const Device& d : devices) {
    if (d != first) {
      throw InvalidArgument(std::string(op) + ": inputs on " + first.str() + " and " + d.str() +
                            "; ops do not copy between devices (move tensors with .to(device))");
    }
  }
  return first;
}

}  // namespace lmx
