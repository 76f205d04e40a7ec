// Sampler and logit processors against direct computations on random logits.
#include "lmx/generate/sampler.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include "lmx/base/error.h"
#include "lmx/generate/token_sampler.h"

namespace lmx::generate {
namespace {

std::vector<float> random_logits(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, 2.0f);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

// Softmax probabilities of logits / t restricted to `allowed` (renormalized).
std::vector<double> expected_probs(const std::vector<float>& logits, float t, const std::vector<bool>& allowed) {
  std::vector<double> p(logits.size(), 0.0);
  double m = -1e300, s = 0;
  for (size_t i = 0; i < logits.size(); ++i)
    if (allowed[i]) m = std::max(m, static_cast<double>(logits[i]) / t);
  for (size_t i = 0; i < logits.size(); ++i)
    if (allowed[i]) s += p[i] = std::exp(logits[i] / t - m);
  for (auto& x : p) x /= s;
  return p;
}

void expect_distribution(GenerateParameters p, const std::vector<float>& logits, const std::vector<double>& want,
                         int draws = 30000) {
  Sampler s(p);
  std::vector<int> counts(logits.size(), 0);
  for (int i = 0; i < draws; ++i) {
    std::vector<float> l = logits;
    counts[static_cast<size_t>(s.sample(l))]++;
  }
  for (size_t i = 0; i < logits.size(); ++i) {
    const double sd = std::sqrt(draws * want[i] * (1 - want[i])) + 1e-9;
    if (want[i] == 0) {
      EXPECT_EQ(counts[i], 0) << "token " << i << " should never be drawn";
    } else {
      EXPECT_NEAR(counts[i], draws * want[i], 5 * sd + 1) << "token " << i;
    }
  }
}

TEST(Sampler, TemperatureZeroIsArgmax) {
  GenerateParameters p;
  p.temperature = 0;
  Sampler s(p);
  for (uint32_t seed = 0; seed < 20; ++seed) {
    auto l = random_logits(100, seed);
    const int want = static_cast<int>(std::max_element(l.begin(), l.end()) - l.begin());
    EXPECT_EQ(s.sample(l), want);
  }
}

TEST(Sampler, CategoricalAtTemperature) {
  auto logits = random_logits(8, 3);
  GenerateParameters p;
  p.temperature = 0.7f;
  p.seed = 11;
  expect_distribution(p, logits, expected_probs(logits, 0.7f, std::vector<bool>(8, true)));
}

TEST(Sampler, TopKKeepsTheKLargest) {
  auto logits = random_logits(10, 4);
  GenerateParameters p;
  p.temperature = 1.0f;
  p.top_k = 3;
  p.seed = 12;
  std::vector<int> order(10);
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](int a, int b) { return logits[a] > logits[b]; });
  std::vector<bool> allowed(10, false);
  for (int i = 0; i < 3; ++i) allowed[static_cast<size_t>(order[i])] = true;
  expect_distribution(p, logits, expected_probs(logits, 1.0f, allowed));
}

TEST(Sampler, TopPKeepsTheSmallestHeadAboveP) {
  auto logits = random_logits(10, 5);
  GenerateParameters p;
  p.temperature = 1.0f;
  p.top_p = 0.8f;
  p.seed = 13;
  // Direct computation: sort descending, keep tokens until the mass reaches p (the
  // token that crosses p is kept).
  auto probs = expected_probs(logits, 1.0f, std::vector<bool>(10, true));
  std::vector<int> order(10);
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](int a, int b) { return probs[a] > probs[b]; });
  std::vector<bool> allowed(10, false);
  double mass = 0;
  for (int i : order) {
    allowed[static_cast<size_t>(i)] = true;
    mass += probs[static_cast<size_t>(i)];
    if (mass >= 0.8) break;
  }
  expect_distribution(p, logits, expected_probs(logits, 1.0f, allowed));
}

TEST(Sampler, MinPDropsTokensBelowTheThreshold) {
  auto logits = random_logits(12, 6);
  GenerateParameters p;
  p.temperature = 1.5f;
  p.min_p = 0.1f;
  p.seed = 14;
  auto probs = expected_probs(logits, 1.0f, std::vector<bool>(12, true));
  const double top = *std::max_element(probs.begin(), probs.end());
  std::vector<bool> allowed(12);
  for (size_t i = 0; i < 12; ++i) allowed[i] = probs[i] >= 0.1 * top;
  expect_distribution(p, logits, expected_probs(logits, 1.5f, allowed));
}

TEST(Sampler, SeededRunsRepeat) {
  GenerateParameters p;
  p.temperature = 1.0f;
  p.seed = 99;
  Sampler a(p), b(p);
  auto logits = random_logits(50, 7);
  for (int i = 0; i < 100; ++i) {
    auto x = logits, y = logits;
    ASSERT_EQ(a.sample(x), b.sample(y));
  }
}

TEST(LogitProcessor, PenaltiesFollowTheirDefinitions) {
  GenerateParameters p;
  p.repetition_penalty = 1.5f;
  p.repetition_context_size = 3;
  p.presence_penalty = 0.5f;
  p.frequency_penalty = 0.25f;
  p.frequency_context_size = 4;
  p.logit_bias = {{0, 2.0f}};
  LogitProcessor proc(p);
  for (int32_t t : {9, 1, 2, 2, 3}) proc.observe(t);  // windows: rep {2,2,3}, presence last 20, freq {1,2,2,3}
  std::vector<float> l = {1.0f, -1.0f, 2.0f, -2.0f, 4.0f, 0.5f, 0, 0, 0, 3.0f};
  proc.process(l);
  EXPECT_FLOAT_EQ(l[0], 3.0f);                          // bias only
  EXPECT_FLOAT_EQ(l[1], -1.0f - 0.5f - 0.25f);          // presence + frequency 1
  EXPECT_FLOAT_EQ(l[2], 2.0f / 1.5f - 0.5f - 0.5f);     // repetition, presence, frequency 2
  EXPECT_FLOAT_EQ(l[3], -2.0f * 1.5f - 0.5f - 0.25f);   // negative logit multiplied
  EXPECT_FLOAT_EQ(l[9], 3.0f - 0.5f);                   // outside rep and freq windows
  GenerateParameters bad;
  bad.logit_bias = {{10, 1.0f}};
  std::vector<float> small(10, 0.0f);
  EXPECT_THROW(LogitProcessor(bad).process(small), InvalidArgument);
}

TEST(Sampler, InvalidParametersAreRejected) {
  GenerateParameters p;
  p.temperature = -1;
  EXPECT_THROW(Sampler{p}, InvalidArgument);
  p = {};
  p.top_p = 0;
  EXPECT_THROW(Sampler{p}, InvalidArgument);
}

// Greedy picks decided from a few logits (TokenSampler::pick_greedy, what the device path
// brings back: the raw logits' first maximum, its value, the values at the touched ids) equal
// sample() on the whole row, step after step, with logit bias (bans of the maximum included)
// and penalties over the history; logits drawn from a few levels, so ties are common. A
// pick of -1 happens only when the maximum's own logit was lowered.
TEST(TokenSampler, GreedyPicksFromTouchedLogitsEqualSamplingTheRow) {
  std::mt19937 rng(2024);
  int undecided = 0, decided = 0, biased_wins = 0;
  for (int trial = 0; trial < 60; ++trial) {
    const int64_t vocab = 50 + trial;
    std::uniform_int_distribution<int32_t> any(0, static_cast<int32_t>(vocab) - 1);
    GenerateParameters p;
    p.temperature = 0;
    if (trial % 2) p.repetition_penalty = 1.3f;
    if (trial % 3 == 0) p.presence_penalty = 0.7f;
    if (trial % 4 == 1) p.frequency_penalty = 0.4f;
    p.repetition_context_size = 6;
    for (int b = 0; b < trial % 5; ++b) p.logit_bias[any(rng)] = (b % 2 ? 3.0f : -100.0f);
    std::vector<int32_t> prompt;
    for (int i = 0; i < 8; ++i) prompt.push_back(any(rng));
    TokenSampler host(p, prompt), device(p, prompt);
    std::vector<float> scratch;
    for (int step = 0; step < 12; ++step) {
      std::vector<float> logits(static_cast<size_t>(vocab));
      std::uniform_int_distribution<int> level(0, 7);
      for (float& x : logits) x = static_cast<float>(level(rng)) * 0.5f - 1.0f;  // ties
      const int32_t best = static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
      std::vector<float> row = logits;
      const int32_t want = host.sample(row);
      const std::optional<std::vector<int32_t>> ids = device.greedy_touched_ids(vocab);
      ASSERT_TRUE(ids.has_value());
      ASSERT_TRUE(std::is_sorted(ids->begin(), ids->end()));
      std::vector<float> values;
      for (int32_t id : *ids) values.push_back(logits[static_cast<size_t>(id)]);
      const int32_t got = device.pick_greedy(best, logits[static_cast<size_t>(best)], *ids, values, scratch, vocab);
      if (got < 0) {
        ++undecided;
        ASSERT_TRUE(std::binary_search(ids->begin(), ids->end(), best)) << "trial " << trial << " step " << step;
        std::vector<float> again = logits;
        ASSERT_EQ(device.sample(again), want) << "trial " << trial << " step " << step;
      } else {
        ++decided;
        ASSERT_EQ(got, want) << "trial " << trial << " step " << step;
        biased_wins += got != best;
      }
    }
  }
  EXPECT_GT(undecided, 0);  // the ban / penalty on the leader happened
  EXPECT_GT(biased_wins, 0);  // and picks other than the raw maximum came from the touched ids
  EXPECT_GT(decided, undecided);
}

// Sampling that needs the whole row is never decided from a few values.
TEST(TokenSampler, GreedyTouchedIdsOnlyForPlainGreedySampling) {
  GenerateParameters p;
  p.temperature = 0;
  EXPECT_EQ(TokenSampler(p, {}).greedy_touched_ids(10), std::vector<int32_t>{});
  p.logit_bias[12] = 1.0f;  // outside a 10-token vocabulary: sample() names the error
  EXPECT_FALSE(TokenSampler(p, {}).greedy_touched_ids(10).has_value());
  p.logit_bias.clear();
  p.logprobs = true;
  EXPECT_FALSE(TokenSampler(p, {}).greedy_touched_ids(10).has_value());
  p.logprobs = false;
  p.temperature = 0.7f;
  EXPECT_FALSE(TokenSampler(p, {}).greedy_touched_ids(10).has_value());
  p.temperature = 0;
  p.logits_processors.push_back([](const std::vector<int32_t>&, std::vector<float>&) {});
  EXPECT_FALSE(TokenSampler(p, {}).greedy_touched_ids(10).has_value());
  p.logits_processors.clear();
  p.repetition_penalty = 1.1f;
  EXPECT_EQ(TokenSampler(p, {4, 2, 4, 11}).greedy_touched_ids(10), (std::vector<int32_t>{2, 4}));
}

}  // namespace
}  // namespace lmx::generate
