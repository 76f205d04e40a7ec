#include "lmx/generate/device_greedy.h"

#include "lmx/base/env_switch.h"
#include "lmx/core/ops/reduce.h"

namespace lmx::generate {

bool use_device_greedy(const Device& device) { return !device.is_cpu() && device_greedy(); }

std::vector<int32_t> device_argmax_rows(const Tensor& logits) {
  const int64_t vocab = logits.dim(-1);
  Tensor ids = ops::argmax(logits.reshape({-1, vocab}), -1).contiguous().to(Device::cpu());  // i32 [rows]
  return std::vector<int32_t>(ids.data<int32_t>(), ids.data<int32_t>() + ids.numel());
}

}  // namespace lmx::generate
