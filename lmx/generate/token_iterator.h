// The token loop: prefill the prompt in balanced chunks (all but its last token), then
// one forward step per generated token, sampling from the last position's logits.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <stop_token>
#include <vector>

#include "lmx/core/residency.h"
#include "lmx/generate/decode_graph.h"
#include "lmx/generate/generate_parameters.h"
#include "lmx/generate/speculative.h"
#include "lmx/generate/token_sampler.h"
#include "lmx/generate/wired_memory.h"
#include "lmx/models/language_model.h"

namespace lmx::generate {

// The caches a model needs for these parameters, one per layer: windowed layers get
// rotating caches of their window; with max_kv_size, full-attention layers get rotating
// caches of that size (keep 4), else simple caches (which maybe_quantize_kv_cache turns
// into quantized ones).
nn::KVCacheList make_cache(const models::LanguageModel& model, const GenerateParameters& params);
// With kv_bits set: replaces every simple cache whose offset reached
// quantized_kv_start by its quantized form (as mlx-lm does after each forward pass).
void maybe_quantize_kv_cache(nn::KVCacheList& cache, const GenerateParameters& params);
// Whether every cache can drop positions now; trims all of them by n (returns the
// number dropped from the first).
bool can_trim_cache(const nn::KVCacheList& cache);
int64_t trim_cache(nn::KVCacheList& cache, int64_t n);
nn::KVCacheList copy_cache(const nn::KVCacheList& cache);
// Runs the whole of `tokens` through the model into a fresh cache (make_cache(params)),
// in balanced chunks of prefill_step_size: what `lmx cache-prompt` saves.
nn::KVCacheList prefill_cache(models::LanguageModel& model, const std::vector<int32_t>& tokens,
                              const GenerateParameters& params,
                              const std::function<void(int64_t, int64_t)>& progress = {});
// The same into an existing cache (continuing its sequence).
void extend_cache(models::LanguageModel& model, nn::KVCacheList& cache, const std::vector<int32_t>& tokens,
                  const GenerateParameters& params, const std::function<void(int64_t, int64_t)>& progress = {});

struct TokenIteratorOptions {
  // Called after each prefill chunk with (tokens processed, total to prefill).
  std::function<void(int64_t, int64_t)> on_prefill_progress;
  // Checked between chunks and steps; when set, next() throws lmx::Cancelled.
  const std::atomic<bool>* cancel = nullptr;
  // Held from before the prefill to the end of decode (mlx-swift covers decode only):
  // meanwhile the model's weights and this iteration's KV cache are the regions the CPU
  // wired limit pins. Admission may wait; `stop` cancels the wait (lmx::Cancelled).
  std::optional<WiredTicket> wired_ticket;
  std::stop_token stop;
  // Before running, estimate weights + KV for the whole context + workspace and throw
  // OutOfMemory when it cannot fit in `available_memory()` (default: MemAvailable).
  bool check_memory = true;
  std::function<size_t()> available_memory;
  // With a draft model: speculative decoding (lmx/generate/speculative.h).
  SpeculativeOptions speculative;
};

class TokenIterator {
 public:
  // `cache` may hold state from earlier calls (its offset tokens are already in it, and
  // `prompt` holds only the new tokens). Null: a fresh cache is made and owned here.
  TokenIterator(models::LanguageModel& model, std::vector<int32_t> prompt, const GenerateParameters& params,
                nn::KVCacheList* cache = nullptr, TokenIteratorOptions options = {});

  // The next token (the first call prefills). Stops at max_tokens: then nullopt.
  std::optional<int32_t> next();

  int64_t prompt_tokens() const { return static_cast<int64_t>(prompt_.size()); }
  // Positions already in a cache passed in (a reused prompt cache).
  int64_t cached_prompt_tokens() const { return cached_tokens_; }
  int64_t generated_tokens() const { return generated_; }
  double prompt_seconds() const { return prompt_seconds_; }
  double generation_seconds() const { return generation_seconds_; }
  const TokenSampler& sampler() const { return sampler_; }
  // Draft / acceptance counts and timings (all zero without a draft model).
  SpeculativeStats speculative_stats() const { return speculative_ ? speculative_->stats() : SpeculativeStats{}; }
  const GenerateParameters& params() const { return params_; }
  // Decode steps captured as device graphs and replayed (0 and 0 on the CPU).
  int64_t graph_captures() const { return decode_graph_.captures(); }
  int64_t graph_replays() const { return decode_graph_.replays(); }
  nn::KVCacheList& cache() { return *cache_; }
  // Ends the wired ticket (when held) and unpins the regions; idempotent. The stream's
  // end calls it; so does the destructor.
  void release_wired();
  // The limit applied when the ticket started (nullopt: no ticket held).
  std::optional<size_t> wired_limit() const;

 private:
  void acquire_wired();
  void after_forward();
  void prefill();
  // Runs tokens [0, n) of `prompt_` through `model` into `cache` in balanced chunks.
  void prefill_chunks(models::LanguageModel& model, nn::KVCacheList& cache, int64_t n, bool main);
  int32_t step(const std::vector<int32_t>& tokens);
  // One speculative round after pending_ into ready_.
  void speculate();
  void check_cancel() const;

  models::LanguageModel& model_;
  std::vector<int32_t> prompt_;
  GenerateParameters params_;
  nn::KVCacheList owned_cache_;
  nn::KVCacheList* cache_;
  TokenIteratorOptions options_;
  TokenSampler sampler_;
  bool prefilled_ = false;
  int32_t pending_ = -1;  // sampled but not yet fed back
  std::unique_ptr<SpeculativeDecoder> speculative_;
  std::deque<int32_t> ready_;  // decided by the last speculative round, not yet returned
  std::vector<float> row_;        // the last position's logits, reused every step
  DecodeGraph decode_graph_;      // batch-1 decode steps replayed on the device (CUDA graphs)
  int64_t generated_ = 0;
  int64_t cached_tokens_ = 0;
  double prompt_seconds_ = 0, generation_seconds_ = 0;
  // Declared after the cache so they unpin before it is freed; the guard last, so the
  // ticket ends (and the limit drops) before the regions go.
  residency::RegionRegistry::Handle weight_pins_, kv_pins_;
  std::optional<WiredLimitGuard> wired_;
};

}  // namespace lmx::generate
