// Greedy sampling where the logits are. When every sampler of a step is the plain argmax
// (TokenSampler::plain_greedy) and the logits live on a device, the argmax runs there and
// only the chosen ids come back to the host (4 bytes a row instead of the row's vocab-sized
// f32 logits and a host pass over them). The device's argmax and the host's pick the same
// id: the first maximum (with a NaN in the row, the device takes the first NaN, the host the
// first element only when it is NaN; such logits are garbage either way). LMX_DEVICE_GREEDY=0
// keeps the host path (lmx/base/env_switch.h).
#pragma once

#include <cstdint>
#include <vector>

#include "lmx/core/tensor.h"

namespace lmx::generate {

// True when logits on `device` may be reduced there (a device other than the CPU, switch on).
bool use_device_greedy(const Device& device);
// The argmax of each row of logits [..., vocab] (f32), computed on their device; one id a row.
std::vector<int32_t> device_argmax_rows(const Tensor& logits);

}  // namespace lmx::generate
