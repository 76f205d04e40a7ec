#include "lmx/core/backend.h"

#include <gtest/gtest.h>

#include <string>

#include "lmx/base/error.h"

namespace lmx {
namespace {

TEST(Backend, CommonDeviceIsTheOneDeviceOfTheInputs) {
  EXPECT_EQ(common_device("op", {Device::cpu(), Device::cpu()}), Device::cpu());
  EXPECT_EQ(common_device("op", {Device::cuda(1), Device::cuda(1)}), Device::cuda(1));
}

TEST(Backend, MixedDevicesAreAnErrorNamingTheOpAndBothDevices) {
  for (auto devices : {std::pair{Device::cpu(), Device::cuda(0)}, std::pair{Device::cuda(0), Device::cuda(1)}}) {
    try {
      common_device("matmul", {devices.first, devices.first, devices.second});
      FAIL() << "mixed devices accepted";
    } catch (const InvalidArgument& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find("matmul"), std::string::npos) << msg;
      EXPECT_NE(msg.find(devices.first.str()), std::string::npos) << msg;
      EXPECT_NE(msg.find(devices.second.str()), std::string::npos) << msg;
    }
  }
}

TEST(Backend, TheCpuTableServesTheCpu) {
  Backend& cpu = backend_for(Device::cpu());
  EXPECT_EQ(cpu.device(), Device::cpu());
  EXPECT_EQ(&allocator_for(Device::cpu()), &cpu.allocator());
  const float x[] = {0.5f, -2.0f, 7.25f, 7.0f};
  EXPECT_EQ(cpu.argmax_f32(x, 4), 2);
}

// A backend that fills in nothing but its device: every entry it lacks names the op and
// the device instead of running something else.
class EmptyBackend final : public Backend {
 public:
  Device device() const override { return Device::cuda(7); }
  Allocator& allocator() override { return allocator_for(Device::cpu()); }
};

TEST(Backend, AnEntryABackendLacksIsUnsupportedNamingOpAndDevice) {
  EmptyBackend b;
  kernels::GemmArgs g;
  try {
    b.gemm_f32(g);
    FAIL() << "missing entry ran";
  } catch (const Unsupported& e) {
    EXPECT_NE(std::string(e.what()).find("matmul"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("cuda:7"), std::string::npos) << e.what();
  }
  EXPECT_THROW(b.rms_norm(nullptr, 0, 0, 0, nullptr, 0, {}), Unsupported);
  EXPECT_THROW(b.prepare_quantized({}), Unsupported);
  EXPECT_FALSE(b.recommended_working_set(0).has_value());
  EXPECT_NE(b.reserve_pool(1), "");
}

}  // namespace
}  // namespace lmx
