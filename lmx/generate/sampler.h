// Turning a row of logits into the next token, in mlx-swift-lm's order: logit
// processors (logit bias, repetition, presence, frequency penalties) then the sampler
// (argmax at temperature 0; else top-p, min-p, XTC, top-k filters on log-probabilities
// and a categorical draw at the temperature). All randomness comes from one seeded
// generator consumed on the calling thread, so seeded runs do not depend on threads.
#pragma once

#include <cstdint>
#include <deque>
#include <utility>
#include <vector>

#include "lmx/core/ops/random.h"
#include "lmx/generate/generate_parameters.h"

namespace lmx::generate {

class LogitProcessor {
 public:
  explicit LogitProcessor(const GenerateParameters& p) : p_(p) {}
  // Records prompt or generated tokens (the penalties' context windows).
  void observe(int32_t token);
  // Applies bias and penalties to logits [vocab] in place.
  void process(std::vector<float>& logits) const;
  // The ids whose logits process() reads or changes (the bias ids, the penalties' windows),
  // sorted and unique; empty when it changes nothing.
  std::vector<int32_t> touched_ids() const;

 private:
  GenerateParameters p_;
  std::deque<int32_t> recent_;  // the last max(context sizes) tokens
};

class Sampler {
 public:
  explicit Sampler(const GenerateParameters& p);
  // Picks a token from logits [vocab] (which it may modify).
  int32_t sample(std::vector<float>& logits);
  // The distribution sample() would draw from, as probabilities [vocab] summing to 1 (the
  // filters and the temperature applied; temperature 0: all mass on the argmax). The XTC
  // coin, when enabled, is drawn here as sample() draws it. For speculative decoding.
  std::vector<double> probabilities(std::vector<float>& logits);
  // A token drawn from non-negative weights [vocab] (inverse CDF; one uniform draw).
  int32_t draw(const std::vector<double>& weights);
  // A uniform draw in [0, 1) from the same generator.
  double uniform() { return rng_.next_double(); }
  // log-softmax of the logits last passed to sample(), before filtering (for logprobs;
  // kept only when params.logprobs or top_logprobs > 0).
  const std::vector<float>& last_logprobs() const { return logprobs_; }
  // The top_logprobs most likely (token, logprob) of the last call, most likely first.
  std::vector<std::pair<int32_t, float>> last_top_logprobs() const;

 private:
  // log-softmax, then top-p, min-p, XTC, top-k (nothing when none is enabled).
  void apply_filters(std::vector<float>& logits);
  // The filters, then exp(logit / temperature - max): the draw's unnormalized weights.
  std::vector<double> weights(std::vector<float>& logits);
  GenerateParameters p_;
  ops::RandomGenerator rng_;
  std::vector<float> logprobs_;
  std::vector<int32_t> order_;
};

// log-softmax of a row in double precision accumulation.
void log_softmax_inplace(std::vector<float>& x);
// mlx-lm's XTC on log-probabilities: unless `coin` > probability, every token whose
// probability exceeds the smallest probability above `threshold` gets -inf (so the least
// likely of the tokens above the threshold survives); `special` tokens are never dropped.
void apply_xtc(std::vector<float>& logprobs, float threshold, const std::vector<int32_t>& special);

}  // namespace lmx::generate
