// Speculative decoding: a small draft model proposes up to N tokens one at a time, the
// main model scores all of them in one forward pass, and both KV caches are trimmed back
// to what was kept. Draft token x is accepted with probability min(1, p(x) / q(x)) (p, q:
// the main and draft distributions the sampler would draw from); the first rejected one
// is replaced by a draw from max(0, p - q) renormalized, and after N accepted tokens one
// more comes from p. Every token thus follows the main model's distribution exactly
// (Leviathan et al., 2023); at temperature 0 the output is plain greedy decoding's.
// mlx-lm's names: --draft-model, --num-draft-tokens.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "lmx/generate/generate_parameters.h"
#include "lmx/generate/token_sampler.h"
#include "lmx/models/language_model.h"

namespace lmx::generate {

struct SpeculativeOptions {
  models::LanguageModel* draft_model = nullptr;  // null: plain decoding
  int num_draft_tokens = 3;                      // mlx-lm's default
};

struct SpeculativeStats {
  int64_t rounds = 0;    // forward passes of the main model after the prompt
  int64_t drafted = 0;   // tokens the draft model proposed
  int64_t accepted = 0;  // of them, kept
  double draft_seconds = 0, verify_seconds = 0;
  double acceptance_rate() const { return drafted > 0 ? static_cast<double>(accepted) / static_cast<double>(drafted) : 0.0; }
};

class SpeculativeDecoder {
 public:
  // `main_cache` and `sampler` are the caller's token loop's; the draft's cache and sampler
  // (seeded from params.seed + 1) are made here. InvalidArgument when the draft's
  // vocabulary is larger than the main model's, num_draft_tokens < 1, or logprobs are asked for.
  SpeculativeDecoder(models::LanguageModel& main, nn::KVCacheList& main_cache, TokenSampler& sampler,
                     const GenerateParameters& params, const SpeculativeOptions& options,
                     const std::vector<int32_t>& prompt);

  models::LanguageModel& draft_model() { return draft_; }
  nn::KVCacheList& draft_cache() { return draft_cache_; }
  // One round after `last`, the newest token (in neither cache yet; both caches hold every
  // earlier token once the prompt is prefilled): 1 to max_new tokens, the accepted drafts
  // then the main model's own, each recorded in both samplers. Unsupported when a cache
  // cannot be trimmed (a rotating cache that wrapped).
  std::vector<int32_t> round(int32_t last, int64_t max_new);
  const SpeculativeStats& stats() const { return stats_; }

 private:
  models::LanguageModel& main_;
  nn::KVCacheList& main_cache_;
  TokenSampler& sampler_;
  GenerateParameters params_;
  models::LanguageModel& draft_;
  int num_draft_;
  nn::KVCacheList draft_cache_;
  TokenSampler draft_sampler_;
  // A draft token the draft model has not seen yet (all of the last round's drafts were
  // accepted, the last one was never fed back): -1 when none.
  int32_t draft_backlog_ = -1;
  SpeculativeStats stats_;
};

}  // namespace lmx::generate
