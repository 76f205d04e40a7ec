#include "lmx/generate/token_sampler.h"

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

bool TokenSampler::plain_greedy() const {
  const auto neutral = [](const std::optional<float>& v, float none) { return !v || *v == none; };
  return params_.temperature == 0.0f && params_.logit_bias.empty() && !params_.logprobs &&
         params_.top_logprobs <= 0 && params_.logits_processors.empty() &&
         neutral(params_.repetition_penalty, 1.0f) && neutral(params_.presence_penalty, 0.0f) &&
         neutral(params_.frequency_penalty, 0.0f);
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
