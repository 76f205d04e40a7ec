#include "lmx/generate/token_sampler.h"

#include <algorithm>

namespace lmx::generate {

TokenSampler::TokenSampler(const GenerateParameters& params, const std::vector<int32_t>& prompt)
    : params_(params), processor_(params), sampler_(params) {
  for (int32_t t : prompt) processor_.observe(t);
  if (!params_.logits_processors.empty()) history_ = prompt;
}

int32_t TokenSampler::sample(std::vector<float>& logits) {
  processor_.process(logits);
  for (const auto& fn : params_.logits_processors) fn(history_, logits);
  const int32_t token = sampler_.sample(logits);
  record(token);
  return token;
}

std::vector<double> TokenSampler::probabilities(std::vector<float>& logits, const std::vector<int32_t>& pending) {
  if (pending.empty()) {
    processor_.process(logits);
    for (const auto& fn : params_.logits_processors) fn(history_, logits);
  } else {
    LogitProcessor processor = processor_;
    for (int32_t t : pending) processor.observe(t);
    processor.process(logits);
    if (!params_.logits_processors.empty()) {
      std::vector<int32_t> history = history_;
      history.insert(history.end(), pending.begin(), pending.end());
      for (const auto& fn : params_.logits_processors) fn(history, logits);
    }
  }
  return sampler_.probabilities(logits);
}

std::optional<std::vector<int32_t>> TokenSampler::greedy_touched_ids(int64_t vocab) const {
  if (params_.temperature != 0.0f || params_.logprobs || params_.top_logprobs > 0 || !params_.logits_processors.empty())
    return std::nullopt;
  for (const auto& [id, bias] : params_.logit_bias)
    if (id < 0 || id >= vocab) return std::nullopt;  // sample() names it
  std::vector<int32_t> ids = processor_.touched_ids();
  std::erase_if(ids, [&](int32_t id) { return id < 0 || id >= vocab; });  // the penalties skip them
  return ids;
}

int32_t TokenSampler::pick_greedy(int32_t best, float best_value, std::span<const int32_t> ids,
                                  std::span<const float> values, std::vector<float>& scratch, int64_t vocab) {
  int32_t token = best;
  if (!ids.empty()) {
    // The processors on a row that holds only the touched ids' values (they read no other).
    scratch.resize(static_cast<size_t>(vocab));
    for (size_t i = 0; i < ids.size(); ++i) scratch[static_cast<size_t>(ids[i])] = values[i];
    processor_.process(scratch);
    // Every untouched logit is at most best_value, and below it before `best` (its first
    // maximum): the processed maximum is `best` unless a touched id beats it, or `best` is
    // touched and was lowered (then an untouched id may win: unknown here).
    float top = best_value;
    for (int32_t id : ids) {
      if (id != best) continue;
      top = scratch[static_cast<size_t>(best)];
      if (top < best_value) return -1;
    }
    for (int32_t id : ids) {  // ids ascend: a tie keeps the lower id, as the host's argmax
      const float v = scratch[static_cast<size_t>(id)];
      if (v > top || (v == top && id < token)) top = v, token = id;
    }
  }
  record(token);
  return token;
}

void TokenSampler::record(int32_t token) {
  processor_.observe(token);
  if (!params_.logits_processors.empty()) history_.push_back(token);
}

TokenLogprob TokenSampler::logprob(int32_t token) const {
  TokenLogprob t;
  t.token = token;
  const auto& lp = sampler_.last_logprobs();
  if ((params_.logprobs || params_.top_logprobs > 0) && token >= 0 && static_cast<size_t>(token) < lp.size()) {
    t.logprob = lp[static_cast<size_t>(token)];
    t.top_logprobs = sampler_.last_top_logprobs();
  }
  return t;
}

}  // namespace lmx::generate
