#include "lmx/generate/device_greedy.h"

#include <optional>

#include "lmx/base/env_switch.h"
#include "lmx/core/ops/index.h"
#include "lmx/core/ops/reduce.h"

namespace lmx::generate {

std::vector<int32_t> pick_greedy_on_device(const Tensor& logits,
                                           std::span<TokenSampler* const> samplers,
                                           std::vector<float>& scratch) {
  if (logits.device().is_cpu() || !device_greedy() || samplers.empty()) return {};
  const int64_t vocab = logits.dim(-1), rows = static_cast<int64_t>(samplers.size());
  std::vector<std::vector<int32_t>> touched;
  bool any_touched = false, any_row = false;
  for (TokenSampler* s : samplers) {
    std::optional<std::vector<int32_t>> ids =
        s ? s->greedy_touched_ids(vocab) : std::vector<int32_t>{};
    if (!ids) return {};
    any_touched = any_touched || !ids->empty();
    any_row = any_row || s;
    touched.push_back(std::move(*ids));
  }
  if (!any_row) return {};
  const Tensor flat = logits.contiguous().reshape({rows, vocab});
  const Tensor best_ids = ops::argmax(flat, -1).to(Device::cpu());  // i32 [rows]
  const int32_t* best = best_ids.data<int32_t>();
  std::vector<int32_t> out(static_cast<size_t>(rows), -1);
  // With bias or penalties: each row's maximum and its touched values, gathered in one call.
  Tensor values;
  if (any_touched) {
    std::vector<int64_t> at;
    for (int64_t r = 0; r < rows; ++r) {
      at.push_back(r * vocab + best[r]);
      for (int32_t id : touched[static_cast<size_t>(r)]) at.push_back(r * vocab + id);
    }
    values = ops::take(flat.reshape({rows * vocab}), Tensor::from_vector(at, {static_cast<int64_t>(at.size())}), 0)
                 .to(Device::cpu());
  }
  const float* v = any_touched ? values.data<float>() : nullptr;
  for (int64_t r = 0; r < rows; ++r) {
    const std::vector<int32_t>& ids = touched[static_cast<size_t>(r)];
    if (TokenSampler* s = samplers[static_cast<size_t>(r)]) {
      out[static_cast<size_t>(r)] = s->pick_greedy(best[r], v ? v[0] : 0.0f, ids,
                                                   std::span<const float>(v ? v + 1 : nullptr, v ? ids.size() : 0),
                                                   scratch, vocab);
    }
    if (v) v += 1 + ids.size();
  }
  return out;
}

}  // namespace lmx::generate
