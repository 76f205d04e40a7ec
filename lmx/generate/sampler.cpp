#include "lmx/generate/sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <numeric>
#include <random>

#include "lmx/base/error.h"
#include "lmx/core/ops/reduce.h"

namespace lmx::generate {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

uint64_t seed_of(const GenerateParameters& p) {
  if (p.seed) return *p.seed;
  return std::random_device{}() ^ (static_cast<uint64_t>(std::random_device{}()) << 32);
}

}  // namespace

void log_softmax_inplace(std::vector<float>& x) {
  float m = kNegInf;
  for (float v : x) m = std::max(m, v);
  if (std::isinf(m) && m < 0) return;
  double s = 0;
  for (float v : x) s += std::exp(static_cast<double>(v) - m);
  const float lse = m + static_cast<float>(std::log(s));
  for (float& v : x) v -= lse;
}

void LogitProcessor::observe(int32_t token) {
  const size_t keep = static_cast<size_t>(
      std::max({p_.repetition_context_size, p_.presence_context_size, p_.frequency_context_size, 0}));
  recent_.push_back(token);
  while (recent_.size() > keep) recent_.pop_front();
}

std::vector<int32_t> LogitProcessor::touched_ids() const {
  std::vector<int32_t> ids;
  for (const auto& [id, bias] : p_.logit_bias) ids.push_back(id);
  const bool penalties = (p_.repetition_penalty && *p_.repetition_penalty != 1.0f) ||
                         (p_.presence_penalty && *p_.presence_penalty != 0.0f) ||
                         (p_.frequency_penalty && *p_.frequency_penalty != 0.0f);
  if (penalties) ids.insert(ids.end(), recent_.begin(), recent_.end());  // every window's tokens
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  return ids;
}

void LogitProcessor::process(std::vector<float>& logits) const {
  const int64_t vocab = static_cast<int64_t>(logits.size());
  for (const auto& [id, bias] : p_.logit_bias) {
    if (id < 0 || id >= vocab) {
      throw InvalidArgument("logit_bias: token id " + std::to_string(id) + " is outside the vocabulary [0, " +
                            std::to_string(vocab) + ")");
    }
    logits[static_cast<size_t>(id)] += bias;
  }
  auto window = [&](int size) {
    const size_t n = std::min(recent_.size(), static_cast<size_t>(std::max(size, 0)));
    return std::vector<int32_t>(recent_.end() - static_cast<std::ptrdiff_t>(n), recent_.end());
  };
  if (p_.repetition_penalty && *p_.repetition_penalty != 1.0f) {
    const float pen = *p_.repetition_penalty;
    std::vector<int32_t> ids = window(p_.repetition_context_size);
    std::sort(ids.begin(), ids.end());
    ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
    for (int32_t id : ids) {
      if (id < 0 || id >= vocab) continue;
      float& l = logits[static_cast<size_t>(id)];
      l = l < 0 ? l * pen : l / pen;
    }
  }
  if (p_.presence_penalty && *p_.presence_penalty != 0.0f) {
    std::vector<int32_t> ids = window(p_.presence_context_size);
    std::sort(ids.begin(), ids.end());
    ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
    for (int32_t id : ids)
      if (id >= 0 && id < vocab) logits[static_cast<size_t>(id)] -= *p_.presence_penalty;
  }
  if (p_.frequency_penalty && *p_.frequency_penalty != 0.0f) {
    std::map<int32_t, int> counts;
    for (int32_t id : window(p_.frequency_context_size)) counts[id]++;
    for (const auto& [id, n] : counts)
      if (id >= 0 && id < vocab) logits[static_cast<size_t>(id)] -= *p_.frequency_penalty * static_cast<float>(n);
  }
}

void apply_xtc(std::vector<float>& logprobs, float threshold, const std::vector<int32_t>& special) {
  const float log_t = std::log(threshold);
  float smallest_above = std::numeric_limits<float>::infinity();
  for (float l : logprobs)
    if (l > log_t) smallest_above = std::min(smallest_above, l);
  if (std::isinf(smallest_above)) return;
  std::vector<float> saved;
  for (int32_t id : special)
    if (id >= 0 && static_cast<size_t>(id) < logprobs.size()) saved.push_back(logprobs[static_cast<size_t>(id)]);
  for (float& l : logprobs)
    if (l > smallest_above) l = kNegInf;
  size_t k = 0;
  for (int32_t id : special)
    if (id >= 0 && static_cast<size_t>(id) < logprobs.size()) logprobs[static_cast<size_t>(id)] = saved[k++];
}

std::vector<std::pair<int32_t, float>> Sampler::last_top_logprobs() const {
  const size_t k = std::min(logprobs_.size(), static_cast<size_t>(std::max(p_.top_logprobs, 0)));
  std::vector<int32_t> idx(logprobs_.size());
  std::iota(idx.begin(), idx.end(), 0);
  std::partial_sort(idx.begin(), idx.begin() + static_cast<std::ptrdiff_t>(k), idx.end(), [&](int32_t a, int32_t b) {
    return logprobs_[static_cast<size_t>(a)] > logprobs_[static_cast<size_t>(b)] ||
           (logprobs_[static_cast<size_t>(a)] == logprobs_[static_cast<size_t>(b)] && a < b);
  });
  std::vector<std::pair<int32_t, float>> out;
  for (size_t i = 0; i < k; ++i) out.emplace_back(idx[i], logprobs_[static_cast<size_t>(idx[i])]);
  return out;
}

Sampler::Sampler(const GenerateParameters& p) : p_(p), rng_(seed_of(p)) {
  if (p.temperature < 0) throw InvalidArgument("temperature must be >= 0, got " + std::to_string(p.temperature));
  if (p.top_p <= 0 || p.top_p > 1) throw InvalidArgument("top_p must be in (0, 1], got " + std::to_string(p.top_p));
  if (p.min_p < 0 || p.min_p > 1) throw InvalidArgument("min_p must be in [0, 1], got " + std::to_string(p.min_p));
  if (p.top_k < 0) throw InvalidArgument("top_k must be >= 0, got " + std::to_string(p.top_k));
  if (p.xtc_probability < 0 || p.xtc_probability > 1 || (p.xtc_probability > 0 && (p.xtc_threshold <= 0 || p.xtc_threshold > 0.5f))) {
    throw InvalidArgument("xtc_probability must be in [0, 1] and xtc_threshold in (0, 0.5], got " +
                          std::to_string(p.xtc_probability) + " / " + std::to_string(p.xtc_threshold));
  }
}

void Sampler::apply_filters(std::vector<float>& logits) {
  const size_t V = logits.size();
  const bool xtc = p_.xtc_probability > 0;
  const bool filter = (p_.top_p > 0 && p_.top_p < 1) || p_.top_k > 0 || p_.min_p > 0 || xtc;
  if (filter) {
    log_softmax_inplace(logits);
    if (p_.top_p > 0 && p_.top_p < 1) {
      // Keep tokens whose cumulative probability, accumulated from the least likely up,
      // exceeds 1 - top_p (mlx-lm's apply_top_p).
      order_.resize(V);
      std::iota(order_.begin(), order_.end(), 0);
      std::sort(order_.begin(), order_.end(), [&](int32_t a, int32_t b) { return logits[a] < logits[b]; });
      double cum = 0;
      const double threshold = 1.0 - p_.top_p;
      for (int32_t id : order_) {
        cum += std::exp(static_cast<double>(logits[id]));
        if (!(cum > threshold)) logits[id] = kNegInf;
      }
    }
    if (p_.min_p > 0) {
      const float top = *std::max_element(logits.begin(), logits.end());
      const float cut = top + std::log(p_.min_p);
      for (float& l : logits)
        if (l < cut) l = kNegInf;
    }
    if (xtc) {
      // One coin per step, drawn whether or not it fires, so the stream of draws does
      // not depend on the logits.
      if (!(rng_.next_double() > p_.xtc_probability)) apply_xtc(logits, p_.xtc_threshold, p_.xtc_special_tokens);
    }
    if (p_.top_k > 0 && static_cast<size_t>(p_.top_k) < V) {
      std::vector<float> sorted = logits;
      std::nth_element(sorted.begin(), sorted.begin() + (p_.top_k - 1), sorted.end(), std::greater<float>());
      const float kth = sorted[static_cast<size_t>(p_.top_k - 1)];
      int kept = 0;
      for (float& l : logits) {
        if (l > kth) ++kept;
      }
      int ties_left = p_.top_k - kept;
      for (float& l : logits) {
        if (l > kth) continue;
        if (l == kth && ties_left > 0) {
          --ties_left;
          continue;
        }
        l = kNegInf;
      }
    }
  }
}

std::vector<double> Sampler::weights(std::vector<float>& logits) {
  apply_filters(logits);
  // softmax(logits / temperature) up to its normalization.
  const float inv_t = 1.0f / p_.temperature;
  float m = kNegInf;
  for (float l : logits) m = std::max(m, l * inv_t);
  std::vector<double> w(logits.size());
  for (size_t i = 0; i < logits.size(); ++i) w[i] = std::exp(static_cast<double>(logits[i] * inv_t - m));
  return w;
}

std::vector<double> Sampler::probabilities(std::vector<float>& logits) {
  if (logits.empty()) throw InvalidArgument("sample: empty logits");
  if (p_.temperature == 0.0f) {
    std::vector<double> probs(logits.size(), 0.0);
    probs[static_cast<size_t>(ops::greedy_argmax(logits))] = 1.0;
    return probs;
  }
  std::vector<double> probs = weights(logits);
  double total = 0;
  for (double p : probs) total += p;
  if (!(total > 0)) throw InvalidArgument("sample: every token was filtered out");
  for (double& p : probs) p /= total;
  return probs;
}

int32_t Sampler::draw(const std::vector<double>& w) {
  double total = 0;
  for (double v : w) total += v;
  const double target = rng_.next_double() * total;
  double acc = 0;
  int32_t pick = -1;
  for (size_t i = 0; i < w.size(); ++i) {
    if (w[i] <= 0) continue;
    pick = static_cast<int32_t>(i);
    acc += w[i];
    if (target < acc) break;
  }
  if (pick < 0) throw InvalidArgument("sample: every token was filtered out");
  return pick;
}

int32_t Sampler::sample(std::vector<float>& logits) {
  if (logits.empty()) throw InvalidArgument("sample: empty logits");
  const bool want_logprobs = p_.logprobs || p_.top_logprobs > 0;
  if (want_logprobs) {
    logprobs_ = logits;
    log_softmax_inplace(logprobs_);
  }
  if (p_.temperature == 0.0f) {
    return static_cast<int32_t>(ops::greedy_argmax(logits));
  }
  // Categorical draw from softmax(logits / temperature) by inverse CDF.
  return draw(weights(logits));
}

}  // namespace lmx::generate
