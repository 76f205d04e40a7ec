#include "lmx/generate/token_iterator.h"

#include <chrono>

#include "lmx/core/error.h"
#include "lmx/generate/simple_kv_cache.h"

namespace lmx::generate {
namespace {

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

}  // namespace

nn::KVCacheList make_cache(const models::LanguageModel& model, const GenerateParameters& params) {
  (void)params;
  nn::KVCacheList caches;
  for (int64_t i = 0; i < model.num_layers(); ++i) caches.push_back(std::make_unique<SimpleKVCache>());
  return caches;
}

TokenIterator::TokenIterator(models::LanguageModel& model, std::vector<int32_t> prompt,
                             const GenerateParameters& params, nn::KVCacheList* cache, TokenIteratorOptions options)
    : model_(model),
      prompt_(std::move(prompt)),
      params_(params),
      cache_(cache),
      options_(std::move(options)),
      processor_(params),
      sampler_(params) {
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
  }
  for (int32_t t : prompt_) processor_.observe(t);
}

void TokenIterator::check_cancel() const {
  if (options_.cancel && options_.cancel->load(std::memory_order_relaxed)) throw Cancelled("generation cancelled");
}

int32_t TokenIterator::step(const std::vector<int32_t>& tokens) {
  Tensor ids = Tensor::from_vector(tokens, {1, static_cast<int64_t>(tokens.size())});
  Tensor logits = model_.forward(ids, cache_);  // [1, L, vocab]
  Tensor last = logits.select(1, -1).select(0, 0);
  std::vector<float> row(last.data<float>(), last.data<float>() + last.numel());
  processor_.process(row);
  const int32_t token = sampler_.sample(row);
  processor_.observe(token);
  return token;
}

void TokenIterator::prefill() {
  const auto start = std::chrono::steady_clock::now();
  const int64_t n = static_cast<int64_t>(prompt_.size()) - 1;  // the last token goes with the first step
  if (n > 0) {
    // Balanced chunks: ceil(n / ceil(n / step)) tokens each.
    const int64_t chunks = (n + params_.prefill_step_size - 1) / params_.prefill_step_size;
    const int64_t chunk = (n + chunks - 1) / chunks;
    for (int64_t done = 0; done < n;) {
      check_cancel();
      const int64_t len = std::min(chunk, n - done);
      Tensor ids = Tensor::from_vector(std::vector<int32_t>(prompt_.begin() + done, prompt_.begin() + done + len),
                                       {1, len});
      model_.forward(ids, cache_);
      done += len;
      if (options_.on_prefill_progress) options_.on_prefill_progress(done, n);
    }
  }
  check_cancel();
  pending_ = step({prompt_.back()});
  prompt_seconds_ = seconds_since(start);
  prefilled_ = true;
}

std::optional<int32_t> TokenIterator::next() {
  if (params_.max_tokens && generated_ >= *params_.max_tokens) return std::nullopt;
  if (!prefilled_) {
    prefill();
    ++generated_;
    return pending_;
  }
  check_cancel();
  const auto start = std::chrono::steady_clock::now();
  pending_ = step({pending_});
  generation_seconds_ += seconds_since(start);
  ++generated_;
  return pending_;
}

}  // namespace lmx::generate
