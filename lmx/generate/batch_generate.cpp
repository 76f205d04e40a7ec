#include "lmx/generate/batch_generate.h"

#include <algorithm>
#include <limits>

#include "lmx/base/error.h"
#include "lmx/generate/batch_kv_cache.h"
#include "lmx/generate/sampler.h"
#include "lmx/generate/token_iterator.h"
#include "lmx/core/ops/shape.h"

namespace lmx::generate {
namespace {

const models::ForwardOptions kLastLogitsOnly{nullptr, true};

bool has_state_layers(const models::LanguageModel& model) {
  for (int64_t i = 0; i < model.num_layers(); ++i)
    if (model.make_layer_cache(i)) return true;
  return false;
}

// Models with recurrent layers: left padding would enter their state, so each prompt runs
// alone, as a single generation runs it (all but the last token prefilled in the same
// chunks, then the last token), and the rows join one batch cache for the decode steps
// (join_batch_row). Returns the last tokens' logits [B, 1, vocab].
Tensor prefill_rows_alone(models::LanguageModel& model, const std::vector<std::vector<int32_t>>& prompts,
                          const GenerateParameters& params, nn::KVCacheList& batch) {
  GenerateParameters plain = params;
  plain.kv_bits.reset();  // the batch cache keeps keys and values unquantized
  std::vector<Tensor> last;
  for (const auto& prompt : prompts) {
    if (prompt.empty()) throw InvalidArgument("batch_generate: a prompt has no tokens");
    nn::KVCacheList own = batch_row_caches(model);
    extend_cache(model, own, std::vector<int32_t>(prompt.begin(), prompt.end() - 1), plain);
    last.push_back(model.forward(Tensor::from_vector(std::vector<int32_t>{prompt.back()}, {1, 1}), &own,
                                 kLastLogitsOnly).contiguous());
    join_batch_row(batch, own);
  }
  return ops::concat(last, 0);
}

}  // namespace

Tensor batch_forward(models::LanguageModel& model,
                     const std::vector<std::vector<int32_t>>& prompts,
                     nn::KVCacheList* cache_out,
                     int32_t pad_token) {
  if (prompts.empty()) throw InvalidArgument("batch_generate: no prompts");
  size_t longest = 0;
  for (size_t b = 0; b < prompts.size(); ++b) {
    if (prompts[b].empty())
      throw InvalidArgument("batch_generate: prompt " + std::to_string(b) + " has no tokens");
    longest = std::max(longest, prompts[b].size());
  }
  const int64_t B = static_cast<int64_t>(prompts.size()), L = static_cast<int64_t>(longest);
  std::vector<int32_t> ids(static_cast<size_t>(B * L), pad_token);
  std::vector<int64_t> pad;
  for (int64_t b = 0; b < B; ++b) {
    const auto& p = prompts[static_cast<size_t>(b)];
    pad.push_back(L - static_cast<int64_t>(p.size()));
    std::copy(p.begin(), p.end(), ids.begin() + b * L + pad.back());
  }
  nn::KVCacheList local;
  nn::KVCacheList& cache = cache_out ? *cache_out : local;
  cache.clear();
  for (int64_t i = 0; i < model.num_layers(); ++i) {
    if (model.make_layer_cache(i)) {
      // Left padding would enter a recurrent state (batch_generate runs such prompts alone).
      throw Unsupported("batch_forward: " + model.model_type() +
                        " has recurrent layers, which a left-padded batch would corrupt; batch_generate and the "
                        "batch scheduler prefill each sequence separately");
    }
    cache.push_back(std::make_unique<BatchKVCache>(pad));
  }
  return model.forward(Tensor::from_vector(ids, {B, L}), &cache);
}

std::vector<std::vector<int32_t>> batch_generate(models::LanguageModel& model,
                                                 const std::vector<std::vector<int32_t>>& prompts,
                                                 const GenerateParameters& params,
                                                 const BatchOptions& options) {
  const size_t B = prompts.size();
  std::vector<LogitProcessor> processors;
  std::vector<Sampler> samplers;
  for (size_t b = 0; b < B; ++b) {
    GenerateParameters p = params;
    if (p.seed) p.seed = *p.seed + b;
    processors.emplace_back(p);
    samplers.emplace_back(p);
    for (int32_t t : prompts[b]) {
      if (t < 0 || t >= model.vocab_size()) {
        throw InvalidArgument("batch_generate: prompt " + std::to_string(b) + " token " +
                              std::to_string(t) + " is outside the vocabulary");
      }
      processors.back().observe(t);
    }
  }
  nn::KVCacheList cache;
  Tensor logits = has_state_layers(model) ? prefill_rows_alone(model, prompts, params, cache)  // [B, 1, V]
                                          : batch_forward(model, prompts, &cache, options.pad_token);  // [B, L, V]
  const int64_t last = logits.dim(1) - 1;
  std::vector<std::vector<int32_t>> out(B);
  std::vector<bool> done(B, false);
  std::vector<int32_t> next(B, options.pad_token);
  const int64_t max_tokens = params.max_tokens.value_or(std::numeric_limits<int64_t>::max());
  for (int64_t step = 0; step < max_tokens; ++step) {
    bool any = false;
    for (size_t b = 0; b < B; ++b) {
      if (done[b]) continue;
      Tensor row = logits.select(0, static_cast<int64_t>(b)).select(0, step == 0 ? last : 0);
      std::vector<float> l = row.to_float_vector();
      processors[b].process(l);
      const int32_t t = samplers[b].sample(l);
      processors[b].observe(t);
      if (options.eos_ids.count(t)) {
        done[b] = true;
        continue;
      }
      out[b].push_back(t);
      next[b] = t;
      any = true;
    }
    if (!any || step + 1 == max_tokens) break;
    for (size_t b = 0; b < B; ++b)
      if (done[b]) next[b] = options.pad_token;  // finished rows ride along, ignored
    logits = model.forward(Tensor::from_vector(next, {static_cast<int64_t>(B), 1}), &cache);
  }
  return out;
}

}  // namespace lmx::generate
