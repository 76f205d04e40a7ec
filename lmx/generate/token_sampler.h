// One sequence's sampling step, shared by the single-sequence token loop and the batch
// scheduler: the logit processors (bias, penalties), then params.logits_processors with
// the sequence so far, then the sampler; the chosen token is recorded for the next step.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include <utility>

#include "lmx/generate/sampler.h"

namespace lmx::generate {

struct TokenLogprob {
  int32_t token = -1;
  float logprob = 0;  // log-probability after the logit processors, before filtering
  std::vector<std::pair<int32_t, float>> top_logprobs;  // most likely first
};

class TokenSampler {
 public:
  // `prompt`: the tokens already in the sequence (the penalties' and the logits
  // processors' context).
  TokenSampler(const GenerateParameters& params, const std::vector<int32_t>& prompt);
  // Picks the next token from logits [vocab] (modified in place) and records it.
  int32_t sample(std::vector<float>& logits);
  // The token's log-probability (and top alternatives) from the last sample(), when the
  // parameters ask for logprobs; else only the token.
  TokenLogprob logprob(int32_t token) const;
  const GenerateParameters& params() const { return params_; }
  // Greedy picks decided from a few logits (lmx/generate/device_greedy.h). When sample() is
  // the argmax of the processed logits (temperature 0, no logprobs, no logits processor,
  // every bias id inside the vocabulary): the ids whose logits the bias and penalties change
  // (sorted; empty: the plain argmax); else nullopt.
  std::optional<std::vector<int32_t>> greedy_touched_ids(int64_t vocab) const;
  // The token sample() would pick, given the unprocessed logits' first maximum `best` (its
  // value best_value) and their values at greedy_touched_ids(); -1 when these do not decide
  // it (best's own logit was lowered: the caller samples the whole row). Records the token
  // it returns. `scratch`: a buffer it sizes to vocab floats (writing only the touched ids).
  int32_t pick_greedy(int32_t best, float best_value, std::span<const int32_t> ids, std::span<const float> values,
                      std::vector<float>& scratch, int64_t vocab);

  // Speculative decoding. The distribution sample() would draw the next token from if the
  // tokens recorded so far were followed by `pending` (drafted, not yet accepted), as
  // probabilities [vocab]; logits are modified in place. Records nothing.
  std::vector<double> probabilities(std::vector<float>& logits, const std::vector<int32_t>& pending);
  // Records a token chosen outside sample() (an accepted draft or a correction).
  void record(int32_t token);
  // A draw from weights [vocab], and a uniform in [0, 1), from the sampler's generator.
  int32_t draw(const std::vector<double>& weights) { return sampler_.draw(weights); }
  double uniform() { return sampler_.uniform(); }

 private:
  GenerateParameters params_;
  LogitProcessor processor_;
  Sampler sampler_;
  std::vector<int32_t> history_;  // prompt + generated, kept for params.logits_processors
};

}  // namespace lmx::generate
