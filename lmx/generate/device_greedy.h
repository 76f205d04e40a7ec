// Greedy sampling where the logits are. When a step's samplers all take the argmax of the
// processed logits (TokenSampler::greedy_touched_ids: temperature 0, no logprobs, no logits
// processor) and the logits live on a device, the argmax runs there and only the chosen ids
// come back to the host (4 bytes a row instead of the row's vocab-sized f32 logits and a
// host pass over them). Logit bias and penalties change a few known logits: their values
// come back too, with each row's maximum, and decide the pick on the host
// (TokenSampler::pick_greedy); a row whose maximum they lowered comes back whole. The picks
// equal the host's argmax: the first maximum (with NaNs in a row, the device takes the first
// NaN, the host the first element only when it is NaN; such logits are garbage either
// way). LMX_DEVICE_GREEDY=0 keeps the host path (lmx/base/env_switch.h).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "lmx/core/tensor.h"
#include "lmx/generate/token_sampler.h"

namespace lmx::generate {

// The tokens of samplers[r] for row r of logits [rows, 1, vocab] or [rows, vocab] (f32), picked
// on the logits' device and recorded in the samplers; -1 for a row the few values did not
// decide (nothing recorded: the caller samples its whole row) and for a null sampler (a row
// that takes no token now). Empty (nothing recorded) when the logits are on the CPU, the
// switch is off, a sampler is not greedy, or every sampler is null.
std::vector<int32_t> pick_greedy_on_device(const Tensor& logits, std::span<TokenSampler* const> samplers,
                                           std::vector<float>& scratch);

}  // namespace lmx::generate
