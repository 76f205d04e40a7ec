// XTC against its definition, logprobs against a direct log-softmax of the model's
// full-sequence logits, seeded runs across thread counts, generate_tokens, callback
// consumption and the background task (cancellation, model release, errors).
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>

#include "lmx/base/thread_pool.h"
#include "lmx/base/error.h"
#include "lmx/generate/generate.h"
#include "lmx/generate/generation_task.h"
#include "lmx/generate/sampler.h"
#include "test_models.h"

namespace lmx {
namespace {

using generate::GenerateParameters;

TEST(Xtc, DropsEveryTokenAboveTheThresholdButTheLeastLikely) {
  const std::vector<float> probs = {0.4f, 0.3f, 0.2f, 0.1f};
  std::vector<float> lp;
  for (float p : probs) lp.push_back(std::log(p));
  auto x = lp;
  generate::apply_xtc(x, 0.15f, {});
  EXPECT_TRUE(std::isinf(x[0]) && std::isinf(x[1]));
  EXPECT_EQ(x[2], lp[2]);
  EXPECT_EQ(x[3], lp[3]);
  x = lp;
  generate::apply_xtc(x, 0.15f, {0});  // special tokens survive
  EXPECT_EQ(x[0], lp[0]);
  EXPECT_TRUE(std::isinf(x[1]));
  x = lp;
  generate::apply_xtc(x, 0.35f, {});  // one token above: nothing to exclude
  EXPECT_EQ(x, lp);
}

TEST(Xtc, SamplingMixesTheTwoDistributionsByTheProbability) {
  GenerateParameters p;
  p.temperature = 1.0f;
  p.seed = 3;
  p.xtc_probability = 0.5f;
  p.xtc_threshold = 0.15f;
  const std::vector<float> logits = {std::log(0.4f), std::log(0.3f), std::log(0.2f),
                                     std::log(0.1f)};
  // Half the time the original distribution, half the time {0.2, 0.1} renormalized.
  const std::vector<double> want = {0.2, 0.15, 0.1 + 0.5 * 2.0 / 3.0, 0.05 + 0.5 / 3.0};
  generate::Sampler s(p);
  const int draws = 40000;
  std::vector<int> counts(4, 0);
  for (int i = 0; i < draws; ++i) {
    auto l = logits;
    counts[static_cast<size_t>(s.sample(l))]++;
  }
  for (size_t i = 0; i < 4; ++i) {
    const double sd = std::sqrt(draws * want[i] * (1 - want[i]));
    EXPECT_NEAR(counts[i], draws * want[i], 5 * sd) << "token " << i;
  }
  p.xtc_threshold = 0.9f;
  EXPECT_THROW(generate::Sampler{p}, InvalidArgument);
}

class GenerateExtras : public ::testing::Test {
 protected:
  void SetUp() override { LMX_REQUIRE_STORIES(); }
};

TEST_F(GenerateExtras, LogprobsEqualTheLogSoftmaxOfFullSequenceLogits) {
  auto c = testing::stories260k();
  GenerateParameters p;
  p.temperature = 0;
  p.max_tokens = 12;
  p.logprobs = true;
  p.top_logprobs = 3;
  generate::GenerateOptions o;
  o.token_events = true;
  const std::vector<int32_t> prompt = {1, 403, 407};
  generate::Generation g(c->model(), c->tokenizer(), prompt, p, o);
  std::vector<generate::TokenLogprob> toks;
  std::string text;
  while (auto e = g.next()) {
    if (e->kind == generate::GenerationEvent::Kind::token) toks.push_back(e->token);
    if (e->kind == generate::GenerationEvent::Kind::text) text += e->text;
  }
  ASSERT_EQ(toks.size(), 12u);
  // The text stream is unchanged by token events.
  generate::Generation plain(c->model(), c->tokenizer(), prompt, p, {});
  std::string plain_text;
  while (auto e = plain.next())
    if (e->kind == generate::GenerationEvent::Kind::text) plain_text += e->text;
  EXPECT_EQ(text, plain_text);
  // One cache-free pass over prompt + generated tokens.
  std::vector<int32_t> seq = prompt;
  for (const auto& t : toks) seq.push_back(t.token);
  seq.pop_back();
  Tensor logits =
      c->model().forward(Tensor::from_vector(seq, {1, static_cast<int64_t>(seq.size())}), nullptr);
  for (size_t i = 0; i < toks.size(); ++i) {
    auto row = logits.select(0, 0)
                   .select(0, static_cast<int64_t>(prompt.size() - 1 + i))
                   .to_float_vector();
    double m = -1e30, s = 0;
    for (float v : row) m = std::max(m, static_cast<double>(v));
    for (float v : row) s += std::exp(v - m);
    const double lse = m + std::log(s);
    EXPECT_NEAR(toks[i].logprob, row[static_cast<size_t>(toks[i].token)] - lse, 1e-4)
        << "token " << i;
    ASSERT_EQ(toks[i].top_logprobs.size(), 3u);
    EXPECT_EQ(toks[i].top_logprobs[0].first, toks[i].token);  // greedy
    EXPECT_GE(toks[i].top_logprobs[0].second, toks[i].top_logprobs[1].second);
    EXPECT_GE(toks[i].top_logprobs[1].second, toks[i].top_logprobs[2].second);
    EXPECT_NEAR(toks[i].top_logprobs[1].second,
                row[static_cast<size_t>(toks[i].top_logprobs[1].first)] - lse, 1e-4);
  }
}

TEST_F(GenerateExtras, SeededRunsAreTheSameWithOneAndTwoThreads) {
  auto c = testing::stories260k();
  GenerateParameters p;
  p.temperature = 1.0f;
  p.top_p = 0.9f;
  p.seed = 1234;
  p.max_tokens = 80;
  auto run = [&] {
    generate::Generation g(c->model(), c->tokenizer(), {1}, p, {});
    while (g.next()) {
    }
    return g.tokens();
  };
  const int before = ThreadPool::global().num_threads();
  ThreadPool::set_global_threads(1);
  const auto one = run();
  ThreadPool::set_global_threads(2);
  const auto two = run();
  ThreadPool::set_global_threads(before);
  EXPECT_EQ(one, two);
  EXPECT_EQ(one.size(), 80u);
  p.seed = 1235;
  EXPECT_NE(run(), one);
}

TEST_F(GenerateExtras, GenerateTokensAndCallbacks) {
  auto c = testing::stories260k();
  GenerateParameters p;
  p.temperature = 0;
  p.max_tokens = 20;
  generate::Generation g(c->model(), c->tokenizer(), {1}, p, {});
  while (g.next()) {
  }
  auto ids = generate::generate_tokens(c->model(), {1}, p);
  std::vector<int32_t> got;
  while (auto t = ids.next()) got.push_back(t->token);
  EXPECT_EQ(got, g.tokens());
  EXPECT_EQ(ids.info().stop_reason, generate::StopReason::length);
  // EOS stops (not reported).
  auto eos = generate::generate_tokens(c->model(), {1}, p, {g.tokens()[4]});
  got.clear();
  EXPECT_EQ(eos.run([&](const generate::TokenLogprob& t) {
    got.push_back(t.token);
    return true;
  }),
            generate::StopReason::stop);
  EXPECT_EQ(got, std::vector<int32_t>(g.tokens().begin(), g.tokens().begin() + 4));
  // A callback returning false stops the work.
  auto early = generate::generate_tokens(c->model(), {1}, p);
  int n = 0;
  EXPECT_EQ(early.run([&](const generate::TokenLogprob&) { return ++n < 5; }),
            generate::StopReason::cancelled);
  EXPECT_EQ(n, 5);
  EXPECT_EQ(early.info().generated_tokens, 5);
  generate::Generation text(c->model(), c->tokenizer(), {1}, p, {});
  int events = 0;
  EXPECT_EQ(text.run([&](const generate::GenerationEvent&) { return ++events < 3; }),
            generate::StopReason::cancelled);
  EXPECT_EQ(events, 3);
  EXPECT_FALSE(text.next().has_value());
}

TEST_F(GenerateExtras, BackgroundTaskStreamsCancelsReleasesAndReportsErrors) {
  auto c = testing::stories260k();
  GenerateParameters p;
  p.temperature = 0;
  p.max_tokens = 30;
  std::string want;
  {
    generate::Generation g(c->model(), c->tokenizer(), {1}, p, {});
    while (auto e = g.next())
      if (e->kind == generate::GenerationEvent::Kind::text) want += e->text;
  }
  {
    generate::GenerationTask task(c, {1}, p);
    std::string got;
    generate::GenerationInfo info;
    while (auto e = task.next()) {
      if (e->kind == generate::GenerationEvent::Kind::text) got += e->text;
      if (e->kind == generate::GenerationEvent::Kind::info) info = e->info;
    }
    task.join();
    EXPECT_EQ(got, want);
    EXPECT_EQ(info.generated_tokens, 30);
  }
  // Dropping the stream early: the destructor cancels and joins; the model is free.
  p.max_tokens = 100000;
  const auto start = std::chrono::steady_clock::now();
  {
    generate::GenerationTask task(c, {1}, p);
    ASSERT_TRUE(task.next().has_value());
  }
  const bool free_now =
      c->perform([](models::LanguageModel&, const tokenizer::Tokenizer&) { return true; });
  EXPECT_TRUE(free_now);
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), 20.0);
  // cancel() ends the stream with a cancelled info event.
  {
    generate::GenerationTask task(c, {1}, p);
    task.next();
    task.cancel();
    generate::StopReason reason = generate::StopReason::length;
    while (auto e = task.next())
      if (e->kind == generate::GenerationEvent::Kind::info) reason = e->info.stop_reason;
    EXPECT_EQ(reason, generate::StopReason::cancelled);
  }
  // Errors inside generation reach the caller.
  {
    generate::GenerationTask task(c, {1, 100000}, p);
    EXPECT_THROW(task.next(), InvalidArgument);
    EXPECT_NO_THROW(task.join());
  }
}

}  // namespace
}  // namespace lmx
