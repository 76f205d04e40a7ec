// Where a tensor's storage lives. Ops run on the backend of their inputs' device.
#pragma once

#include <string>

namespace lmx {

enum class DeviceType : unsigned char { cpu, cuda };

struct Device {
  DeviceType type = DeviceType::cpu;
  int index = 0;

  static Device cpu() { return {DeviceType::cpu, 0}; }
  static Device cuda(int index = 0) { return {DeviceType::cuda, index}; }
  bool is_cpu() const { return type == DeviceType::cpu; }
  bool is_cuda() const { return type == DeviceType::cuda; }
  bool operator==(const Device&) const = default;
  std::string str() const {
    return is_cpu() ? std::string("cpu") : "cuda:" + std::to_string(index);
  }
  // "cpu", "cuda" (device 0) or "cuda:N"; throws InvalidArgument naming the text otherwise.
  // Whether the device exists is the backend's to say (backend_for).
  static Device parse(const std::string& text);
};

}  // namespace lmx
