// Batch-1 decode steps replayed from a device graph (CUDA graphs): the first step over a
// given set of KV buffers runs the model once under a capture (lmx/core/step_values.h:
// the token id and its position live in device memory, the ops that depend on them read
// them there), and every later step only uploads the two values and replays the
// recorded launches, with none of the per-op host work. A new capture happens when the
// cache buffers change (they grow every 256 positions: one capture per capacity bucket).
//
// What stays eager (step() returns false and the caller runs the model as before): any
// cache that is not a SimpleKVCache (rotating, quantized, recurrent / SSM states, batch
// caches), caches on the CPU, the step at which the buffers must grow, a backend without
// graphs or LMX_CUDA_GRAPHS=0 or the CUDA profile on, and any model whose step cannot be
// captured (something in it waits for the device, e.g. MoE routing read on the host or a
// quantized embedding table): the first failed capture switches graphs off for the rest
// of the generation.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "lmx/core/device_graph.h"
#include "lmx/core/tensor.h"
#include "lmx/models/language_model.h"

namespace lmx::generate {

class DecodeGraph {
 public:
  // One decode step of `token` at the caches' offset: advances every cache by one and
  // writes the last position's logits to `row`, or, given `chosen`, only their argmax to
  // *chosen (the graph ends in the argmax on the device: lmx/generate/device_greedy.h). False
  // (nothing ran, caches unchanged): the caller steps eagerly.
  bool step(models::LanguageModel& model, nn::KVCacheList& cache, int32_t token, std::vector<float>& row,
            int32_t* chosen = nullptr);
  int64_t captures() const { return captures_; }
  int64_t replays() const { return replays_; }
  bool disabled() const { return disabled_; }

 private:
  bool capture(models::LanguageModel& model, nn::KVCacheList& cache, int64_t position, int64_t capacity);

  bool disabled_ = false;
  bool greedy_ = false;  // the graph ends in the argmax and copies back one id
  Tensor values_;  // i64 [2] on the device: token id, position
  std::vector<const void*> buffers_;  // the KV buffers the graph was captured over
  std::unique_ptr<DeviceGraph> graph_;
  Tensor logits_;  // the graph's output (its memory is the graph's)
  // Page-locked host memory the graph copies from (token id, position) and to (logits).
  std::shared_ptr<void> host_values_, host_logits_;
  int64_t vocab_ = 0;
  size_t host_logits_bytes_ = 0;
  int64_t captures_ = 0, replays_ = 0;
};

}  // namespace lmx::generate
