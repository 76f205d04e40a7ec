// Batch generation: several prompts decoded together. Prompts are left-padded to one
// length (BatchKVCache masks the padding and rotates each row at its true positions);
// each row has its own logit processor and sampler, stops at its own EOS / max_tokens,
// and at temperature 0 yields the same tokens as generating it alone.
#pragma once

#include <set>
#include <vector>

#include "lmx/generate/generate_parameters.h"
#include "lmx/models/language_model.h"

namespace lmx::generate {

struct BatchOptions {
  std::set<int32_t> eos_ids;  // a row stops after producing one of these (not included)
  int32_t pad_token = 0;      // fed at padded positions (masked out)
};

// One token list per prompt (in order). Each row's sampler is seeded with
// params.seed + row when a seed is given.
std::vector<std::vector<int32_t>> batch_generate(models::LanguageModel& model,
                                                 const std::vector<std::vector<int32_t>>& prompts,
                                                 const GenerateParameters& params,
                                                 const BatchOptions& options = {});

// Left-padded batch forward for tests and scoring: logits [B, max_len, vocab] of the
// prompts (row b's real tokens occupy the last prompts[b].size() positions).
Tensor batch_forward(models::LanguageModel& model,
                     const std::vector<std::vector<int32_t>>& prompts,
                     nn::KVCacheList* cache_out = nullptr,
                     int32_t pad_token = 0);

}  // namespace lmx::generate
