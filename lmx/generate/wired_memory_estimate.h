// How much memory a generation needs: an estimate made before running (weights + KV
// cache for the requested context + workspace), checked against what the machine has
// so a run that cannot fit fails with OutOfMemory instead of being killed; and measure(),
// which runs one prefill and reports what it really used (the number to size a
// wired-memory ticket with).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "lmx/generate/generate_parameters.h"
#include "lmx/models/language_model.h"

namespace lmx::generate {

class ModelContainer;

struct MemoryEstimate {
  size_t weight_bytes = 0;         // what the forward pass reads (weight_regions)
  size_t mapped_weight_bytes = 0;  // of which memory-mapped from the checkpoint files
  size_t kv_bytes = 0;             // caches for the whole context, as make_cache builds them
  size_t workspace_bytes = 0;      // activations of the largest step (prefill chunk)
  size_t total_bytes = 0;          // weights + kv + workspace
  int64_t context_tokens = 0;
  // Bytes that must still fit in free memory: weights the process already owns are
  // loaded, mapped ones are page cache that cannot be dropped without thrashing.
  size_t required_bytes() const { return mapped_weight_bytes + kv_bytes + workspace_bytes; }
};

// The estimate for a prompt of `prompt_tokens` new tokens plus params.max_tokens (on top
// of `cached_tokens` already in a cache), honouring max_kv_size, sliding windows and kv_bits.
MemoryEstimate estimate_memory(models::LanguageModel& model,
                               int64_t prompt_tokens,
                               const GenerateParameters& params,
                               int64_t cached_tokens = 0);
// Throws OutOfMemory naming every part when required_bytes() exceeds `available_bytes`.
void check_memory(const MemoryEstimate& estimate, size_t available_bytes);

struct MemoryMeasurement {
  size_t weight_bytes = 0;
  size_t kv_bytes = 0;           // the caches' buffers after the prefill
  size_t peak_active_bytes = 0;  // allocator peak plus memory-mapped weights
  size_t workspace_bytes = 0;    // max(0, peak - weights - kv)
  size_t total_bytes = 0;        // weights + kv + workspace
};

// Runs one prefill of `tokens` through a fresh cache and reports what it used.
MemoryMeasurement measure(models::LanguageModel& model,
                          const std::vector<int32_t>& tokens,
                          const GenerateParameters& params = {});
// The same through the container (serialized with other work on the model); `num_tokens`
// prompt tokens cycling over the vocabulary.
MemoryMeasurement measure(ModelContainer& container,
                          int64_t num_tokens,
                          const GenerateParameters& params = {});

}  // namespace lmx::generate
