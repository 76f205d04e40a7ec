#include "lmx/generate/token_iterator.h"

#include <chrono>
#include <limits>

#include "lmx/base/env_switch.h"
#include "lmx/base/error.h"
#include "lmx/generate/device_greedy.h"
#include "lmx/generate/quantized_kv_cache.h"
#include "lmx/generate/rotating_kv_cache.h"
#include "lmx/generate/simple_kv_cache.h"
#include "lmx/generate/wired_memory_backend.h"
#include "lmx/generate/wired_memory_estimate.h"
#include "lmx/models/tensor_parallel_cache.h"

namespace lmx::generate {

// Prefill chunks and decode steps only need the last position's logits.
const models::ForwardOptions kLastLogitsOnly{nullptr, true};
namespace {

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

}  // namespace

nn::KVCacheList make_cache(const models::LanguageModel& model, const GenerateParameters& params) {
  if (params.max_kv_size && *params.max_kv_size <= 4) {
    throw InvalidArgument("max_kv_size must be larger than the 4 kept positions, got " +
                          std::to_string(*params.max_kv_size));
  }
  if (params.kv_bits) {
    // Validate bits and group early (the switch happens later, inside generation).
    QuantizedKVCache check(params.kv_group_size, *params.kv_bits, params.kv_value_bits.value_or(0));
  }
  nn::KVCacheList caches;
  const std::vector<int64_t> windows = model.layer_windows();
  for (int64_t i = 0; i < model.num_layers(); ++i) {
    const int64_t w = i < static_cast<int64_t>(windows.size()) ? windows[static_cast<size_t>(i)] : 0;
    if (auto own = model.make_layer_cache(i)) {
      caches.push_back(std::move(own));
    } else if (w > 0) {
      caches.push_back(std::make_unique<RotatingKVCache>(w, 0));
    } else if (params.max_kv_size) {
      caches.push_back(std::make_unique<RotatingKVCache>(*params.max_kv_size, 4));
    } else {
      caches.push_back(std::make_unique<SimpleKVCache>());
    }
  }
  return caches;
}

namespace {

// A plain cache past quantized_kv_start becomes quantized; a split model's, on every rank.
void maybe_quantize(std::unique_ptr<nn::KVCache>& c, const GenerateParameters& params) {
  if (auto* split = dynamic_cast<models::TensorParallelCache*>(c.get())) {
    for (auto& rank : split->ranks()) maybe_quantize(rank, params);
    return;
  }
  auto* simple = dynamic_cast<SimpleKVCache*>(c.get());
  if (simple && simple->offset() >= params.quantized_kv_start) {
    c = simple->to_quantized(params.kv_group_size, *params.kv_bits, params.kv_value_bits.value_or(0));
  }
}

}  // namespace

void maybe_quantize_kv_cache(nn::KVCacheList& cache, const GenerateParameters& params) {
  if (!params.kv_bits) return;
  for (auto& c : cache) maybe_quantize(c, params);
}

bool can_trim_cache(const nn::KVCacheList& cache) {
  for (const auto& c : cache)
    if (!c->is_trimmable()) return false;
  return true;
}

int64_t trim_cache(nn::KVCacheList& cache, int64_t n) {
  if (!can_trim_cache(cache)) throw InvalidArgument("trim_cache: the cache cannot be trimmed (a rotating cache has wrapped)");
  int64_t dropped = 0;
  for (size_t i = 0; i < cache.size(); ++i) {
    const int64_t d = cache[i]->trim(n);
    if (i == 0) dropped = d;
  }
  return dropped;
}

nn::KVCacheList prefill_cache(models::LanguageModel& model, const std::vector<int32_t>& tokens,
                              const GenerateParameters& params, const std::function<void(int64_t, int64_t)>& progress) {
  if (params.prefill_step_size <= 0) throw InvalidArgument("prefill_step_size must be positive");
  nn::KVCacheList cache = make_cache(model, params);
  extend_cache(model, cache, tokens, params, progress);
  return cache;
}

void extend_cache(models::LanguageModel& model, nn::KVCacheList& cache, const std::vector<int32_t>& tokens,
                  const GenerateParameters& params, const std::function<void(int64_t, int64_t)>& progress) {
  if (params.prefill_step_size <= 0) throw InvalidArgument("prefill_step_size must be positive");
  const int64_t n = static_cast<int64_t>(tokens.size());
  if (n == 0) return;
  const int64_t chunks = (n + params.prefill_step_size - 1) / params.prefill_step_size;
  const int64_t chunk = (n + chunks - 1) / chunks;
  for (int64_t done = 0; done < n;) {
    const int64_t len = std::min(chunk, n - done);
    model.forward(Tensor::from_vector(std::vector<int32_t>(tokens.begin() + done, tokens.begin() + done + len), {1, len}),
                  &cache, kLastLogitsOnly);
    maybe_quantize_kv_cache(cache, params);
    done += len;
    if (progress) progress(done, n);
  }
}

nn::KVCacheList copy_cache(const nn::KVCacheList& cache) {
  nn::KVCacheList out;
  for (const auto& c : cache) out.push_back(c->copy());
  return out;
}

TokenIterator::TokenIterator(models::LanguageModel& model, std::vector<int32_t> prompt,
                             const GenerateParameters& params, nn::KVCacheList* cache, TokenIteratorOptions options)
    : model_(model),
      prompt_(std::move(prompt)),
      params_(params),
      cache_(cache),
      options_(std::move(options)),
      sampler_(params, prompt_) {
  if (prompt_.empty()) throw InvalidArgument("generate: the prompt has no tokens");
  const int64_t vocab = model_.vocab_size();
  for (size_t i = 0; i < prompt_.size(); ++i) {
    if (prompt_[i] < 0 || prompt_[i] >= vocab) {
      throw InvalidArgument("generate: prompt token " + std::to_string(prompt_[i]) + " at position " +
                            std::to_string(i) + " is outside the vocabulary [0, " + std::to_string(vocab) + ")");
    }
  }
  if (params_.max_tokens && *params_.max_tokens < 0) {
    throw InvalidArgument("max_tokens must be >= 0, got " + std::to_string(*params_.max_tokens));
  }
  if (params_.prefill_step_size <= 0) throw InvalidArgument("prefill_step_size must be positive");
  if (!cache_) {
    owned_cache_ = make_cache(model_, params_);
    cache_ = &owned_cache_;
  } else if (!cache_->empty()) {
    cached_tokens_ = (*cache_)[0]->offset();
  }
  if (options_.speculative.draft_model) {
    if (cached_tokens_ > 0) {
      throw InvalidArgument("speculative decoding starts from an empty cache (the draft model has no prompt cache)");
    }
    speculative_ = std::make_unique<SpeculativeDecoder>(model_, *cache_, sampler_, params_, options_.speculative,
                                                        prompt_);
  }
  if (options_.check_memory) {
    const MemoryEstimate estimate = estimate_memory(model_, prompt_tokens(), params_, cached_tokens_);
    const size_t available = options_.available_memory ? options_.available_memory() : residency::available_memory();
    // Positions already cached hold their buffers: only the growth needs free memory.
    check_memory(estimate, available + region_bytes(kv_regions(*cache_)));
  }
}

void TokenIterator::acquire_wired() {
  if (!options_.wired_ticket || wired_) return;
  auto& registry = residency::RegionRegistry::global();
  weight_pins_ = registry.add(residency::RegionClass::weights, weight_regions(model_));
  kv_pins_ = registry.add(residency::RegionClass::kv_cache, kv_regions(*cache_));
  wired_.emplace(*options_.wired_ticket, options_.stop);
}

void TokenIterator::release_wired() {
  wired_.reset();
  kv_pins_.reset();
  weight_pins_.reset();
}

std::optional<size_t> TokenIterator::wired_limit() const {
  return wired_ ? std::optional<size_t>(wired_->applied_limit()) : std::nullopt;
}

void TokenIterator::after_forward() {
  maybe_quantize_kv_cache(*cache_, params_);
  // The cache may have grown into new buffers (or turned quantized): pin those instead.
  if (wired_) kv_pins_.update(kv_regions(*cache_));
}

void TokenIterator::check_cancel() const {
  if (options_.cancel && options_.cancel->load(std::memory_order_relaxed)) throw Cancelled("generation cancelled");
}

int32_t TokenIterator::step(const std::vector<int32_t>& tokens) {
  // A greedy sampler with nothing to change picks on the device: the graph ends in the argmax.
  const auto touched = device_greedy() ? sampler_.greedy_touched_ids(model_.vocab_size()) : std::nullopt;
  int32_t chosen = -1;
  if (tokens.size() == 1 &&
      decode_graph_.step(model_, *cache_, tokens[0], row_, touched && touched->empty() ? &chosen : nullptr)) {
    after_forward();
    if (chosen < 0) return sampler_.sample(row_);
    sampler_.record(chosen);
    return chosen;
  }
  Tensor ids = Tensor::from_vector(tokens, {1, static_cast<int64_t>(tokens.size())});
  Tensor logits = model_.forward(ids, cache_, kLastLogitsOnly);  // [1, 1, vocab]: the last position
  after_forward();
  Tensor last = logits.select(1, -1).select(0, 0);
  if (touched) {
    TokenSampler* one[] = {&sampler_};
    const std::vector<int32_t> picked = pick_greedy_on_device(last, one, row_);  // empty on the CPU
    if (!picked.empty() && picked[0] >= 0) return picked[0];  // else undecided: the row comes back
  }
  if (!last.device().is_cpu()) last = last.contiguous().to(Device::cpu());  // only the row comes back
  row_.assign(last.data<float>(), last.data<float>() + last.numel());
  return sampler_.sample(row_);
}

void TokenIterator::prefill_chunks(models::LanguageModel& model, nn::KVCacheList& cache, int64_t n, bool main) {
  if (n <= 0) return;
  // Balanced chunks: ceil(n / ceil(n / step)) tokens each.
  const int64_t chunks = (n + params_.prefill_step_size - 1) / params_.prefill_step_size;
  const int64_t chunk = (n + chunks - 1) / chunks;
  for (int64_t done = 0; done < n;) {
    check_cancel();
    const int64_t len = std::min(chunk, n - done);
    Tensor ids = Tensor::from_vector(std::vector<int32_t>(prompt_.begin() + done, prompt_.begin() + done + len),
                                     {1, len});
    model.forward(ids, &cache, kLastLogitsOnly);
    if (main) after_forward();
    else maybe_quantize_kv_cache(cache, params_);
    done += len;
    if (main && options_.on_prefill_progress) options_.on_prefill_progress(done, n);
  }
}

void TokenIterator::prefill() {
  acquire_wired();
  const auto start = std::chrono::steady_clock::now();
  const int64_t n = static_cast<int64_t>(prompt_.size()) - 1;  // the last token goes with the first step
  prefill_chunks(model_, *cache_, n, true);
  if (speculative_) prefill_chunks(speculative_->draft_model(), speculative_->draft_cache(), n, false);
  check_cancel();
  if (speculative_) {
    pending_ = prompt_.back();
    speculate();
  } else {
    pending_ = step({prompt_.back()});
  }
  prompt_seconds_ = seconds_since(start);
  prefilled_ = true;
}

void TokenIterator::speculate() {
  const int64_t left = params_.max_tokens ? *params_.max_tokens - generated_ : std::numeric_limits<int64_t>::max();
  std::vector<int32_t> tokens = speculative_->round(pending_, left);
  after_forward();
  ready_.assign(tokens.begin(), tokens.end());
}

std::optional<int32_t> TokenIterator::next() {
  if (params_.max_tokens && generated_ >= *params_.max_tokens) {
    release_wired();
    return std::nullopt;
  }
  if (!prefilled_) {
    prefill();
  } else if (!speculative_ || ready_.empty()) {
    check_cancel();
    const auto start = std::chrono::steady_clock::now();
    if (speculative_) speculate();
    else pending_ = step({pending_});
    generation_seconds_ += seconds_since(start);
  }
  if (speculative_) {
    pending_ = ready_.front();
    ready_.pop_front();
  }
  ++generated_;
  return pending_;
}

}  // namespace lmx::generate
