// Continuous batching: sequences that join and leave a running batch at random steps
// (random prompt lengths, limits, chunked prefill) each yield, at temperature 0, the
// tokens of generating their prompt alone through the single-sequence token loop; a
// cancelled sequence leaves the batch before the next step.
#include "lmx/generate/batch_scheduler.h"

#include <gtest/gtest.h>

#include <atomic>
#include <random>
#include <thread>

#include "test_models.h"

namespace lmx {
namespace {

using generate::BatchScheduler;
using generate::GenerateParameters;
using generate::GenerationEvent;
using generate::ScheduledGroup;
using generate::ScheduledRequest;

struct Collected {
  std::vector<int32_t> tokens;  // every token event (EOS included)
  std::string text;
  generate::GenerationInfo info;
};

std::vector<Collected> drain(ScheduledGroup& g, size_t n) {
  std::vector<Collected> out(n);
  while (auto e = g.next()) {
    Collected& c = out.at(e->index);
    switch (e->event.kind) {
      case GenerationEvent::Kind::token: c.tokens.push_back(e->event.token.token); break;
      case GenerationEvent::Kind::info: c.info = e->event.info; break;
      default: c.text += e->event.text; break;
    }
  }
  return out;
}

std::vector<int32_t> random_prompt(std::mt19937& rng, int64_t vocab, int max_len) {
  std::uniform_int_distribution<int> len(1, max_len);
  std::uniform_int_distribution<int32_t> tok(0, static_cast<int32_t>(vocab) - 1);
  std::vector<int32_t> p(static_cast<size_t>(len(rng)));
  for (auto& t : p) t = tok(rng);
  return p;
}

class SchedulerFixtures : public ::testing::TestWithParam<std::string> {};

// 10 sequences through 3 rows: each joins when a row frees, at a random point of the
// others' decoding (submissions are spread over time), with its own prompt length,
// token limit and prefill chunk size.
TEST_P(SchedulerFixtures, EachRowEqualsGeneratingItAlone) {
  auto loaded = models::load_model(testing::fixture(GetParam()));
  models::LanguageModel& model = *loaded.model;
  std::mt19937 rng(1234);
  struct Case {
    std::vector<int32_t> prompt;
    GenerateParameters params;
  };
  std::vector<Case> cases;
  for (int i = 0; i < 10; ++i) {
    Case c;
    c.prompt = random_prompt(rng, model.vocab_size(), 20);
    c.params.temperature = 0;
    c.params.max_tokens = std::uniform_int_distribution<int>(1, 24)(rng);
    c.params.prefill_step_size = std::uniform_int_distribution<int>(3, 8)(rng);
    cases.push_back(c);
  }
  std::vector<std::vector<int32_t>> alone;
  for (const Case& c : cases) {
    std::vector<int32_t> t;
    generate::TokenGeneration gen(model, c.prompt, c.params);
    gen.run([&](const generate::TokenLogprob& l) {
      t.push_back(l.token);
      return true;
    });
    alone.push_back(t);
  }
  BatchScheduler scheduler(model, nullptr, {3});
  auto request = [&](const Case& c) {
    ScheduledRequest r{c.prompt, c.params, {}};
    r.options.token_events = true;
    return r;
  };
  // The first three in one submission, so their rows surely run together (a fixture's
  // step takes microseconds: on a loaded machine, even back-to-back submissions could
  // each finish before the next arrives); the other seven spread over time.
  std::vector<std::shared_ptr<ScheduledGroup>> groups;
  groups.push_back(scheduler.submit({request(cases[0]), request(cases[1]), request(cases[2])}));
  for (size_t i = 3; i < cases.size(); ++i) {
    groups.push_back(scheduler.submit({request(cases[i])}));
    std::this_thread::sleep_for(std::chrono::microseconds(std::uniform_int_distribution<int>(0, 3000)(rng)));
  }
  std::vector<Collected> got = drain(*groups[0], 3);
  for (size_t g = 1; g < groups.size(); ++g) got.push_back(drain(*groups[g], 1)[0]);
  for (size_t i = 0; i < cases.size(); ++i) {
    EXPECT_EQ(got[i].tokens, alone[i]) << GetParam() << " sequence " << i << " (prompt of "
                                       << cases[i].prompt.size() << ")";
    EXPECT_EQ(got[i].info.stop_reason, generate::StopReason::length);
    EXPECT_EQ(got[i].info.generated_tokens, *cases[i].params.max_tokens);
  }
  EXPECT_GT(scheduler.stats().step_rows, scheduler.stats().steps) << "rows were never batched";
  EXPECT_EQ(scheduler.stats().rows, 0u);
}

// Prompts queued together: those at the same point with chunks of the same length are
// prefilled in one forward pass, fresh prompts of another length join it left-padded
// while the pass stays within its budget, those sharing a prefix-cache block with one
// being prefilled wait for it and take it from the cache; every row still yields the
// tokens of generating its prompt alone.
TEST_P(SchedulerFixtures, PromptsQueuedTogetherShareForwardPassesAndEqualGeneratingAlone) {
  auto loaded = models::load_model(testing::fixture(GetParam()));
  models::LanguageModel& model = *loaded.model;
  std::mt19937 rng(77);
  std::uniform_int_distribution<int32_t> tok(0, static_cast<int32_t>(model.vocab_size()) - 1);
  auto prompt = [&](size_t n) {
    std::vector<int32_t> p(n);
    for (auto& t : p) t = tok(rng);
    return p;
  };
  // 0-3: 7 random tokens; 4-6: 7 tokens starting with 0's first block (4 tokens); 7: 11.
  std::vector<std::vector<int32_t>> prompts;
  for (int i = 0; i < 4; ++i) prompts.push_back(prompt(7));
  for (int i = 0; i < 3; ++i) {
    std::vector<int32_t> p = prompt(7);
    std::copy(prompts[0].begin(), prompts[0].begin() + 4, p.begin());
    prompts.push_back(p);
  }
  prompts.push_back(prompt(11));
  GenerateParameters params;
  params.temperature = 0;
  params.max_tokens = 6;
  generate::SchedulerOptions options;
  options.max_concurrent = 8;
  options.prefix_cache_bytes = size_t{1} << 24;
  options.prefix_block_tokens = 4;
  BatchScheduler scheduler(model, nullptr, options);
  std::vector<ScheduledRequest> requests;
  for (const auto& p : prompts) {
    ScheduledRequest r{p, params, {}};
    r.options.token_events = true;
    requests.push_back(r);
  }
  const auto got = drain(*scheduler.submit(requests), prompts.size());  // queued at once
  for (size_t i = 0; i < prompts.size(); ++i) {
    std::vector<int32_t> alone;
    generate::TokenGeneration gen(model, prompts[i], params);
    gen.run([&](const generate::TokenLogprob& l) {
      alone.push_back(l.token);
      return true;
    });
    EXPECT_EQ(got[i].tokens, alone) << GetParam() << " sequence " << i;
  }
  // With the prefix cache: {0, 1, 2, 3} and 7 left-padded to its 11 tokens (55 positions,
  // within the CPU's 63), then {4, 5, 6} from 0's block; without (models whose caches it
  // cannot seed): {0 .. 6} (49 tokens), then 7 (8 rows of 11 would pass 63).
  const bool reused = got[4].info.cached_prompt_tokens == 4;
  if (reused) {
    for (size_t i = 5; i < 7; ++i) EXPECT_EQ(got[i].info.cached_prompt_tokens, 4) << i;
  }
  EXPECT_EQ(scheduler.stats().prefill_passes, 2u) << GetParam();
  EXPECT_EQ(scheduler.stats().rows, 0u);
}

// A model that counts the token positions of every forward pass it runs.
class CountingModel : public models::LanguageModel {
 public:
  explicit CountingModel(models::LanguageModel& inner) : inner_(inner) { model_type_ = inner.model_type(); }
  Tensor forward(const Tensor& tokens, nn::KVCacheList* caches, const models::ForwardOptions& options) override {
    positions += tokens.dim(0) * tokens.dim(1);
    ++passes;
    return inner_.forward(tokens, caches, options);
  }
  int64_t vocab_size() const override { return inner_.vocab_size(); }
  int64_t num_layers() const override { return inner_.num_layers(); }
  std::vector<int64_t> layer_windows() const override { return inner_.layer_windows(); }
  std::unique_ptr<nn::KVCache> make_layer_cache(int64_t layer) const override {
    return inner_.make_layer_cache(layer);
  }
  bool positions_depend_on_length() const override { return inner_.positions_depend_on_length(); }
  std::atomic<int64_t> positions{0}, passes{0};

 private:
  models::LanguageModel& inner_;
};

// A request's first token comes from the pass that prefills its prompt's last chunk:
// the model runs each prompt token once and each generated token but the last once
// (prompt + max_tokens - 1 positions in ceil(prompt / chunk) + max_tokens - 1 passes),
// and the greedy tokens are those of generating the prompt alone (which prefills all
// but the last prompt token and runs that one as its first decode step).
TEST_P(SchedulerFixtures, FirstTokenComesFromThePrefillPass) {
  auto loaded = models::load_model(testing::fixture(GetParam()));
  CountingModel model(*loaded.model);
  std::mt19937 rng(4321);
  BatchScheduler scheduler(model, nullptr, {4});
  for (int i = 0; i < 6; ++i) {
    GenerateParameters params;
    params.temperature = 0;
    params.max_tokens = std::uniform_int_distribution<int>(1, 9)(rng);
    params.prefill_step_size = std::uniform_int_distribution<int>(3, 16)(rng);
    const std::vector<int32_t> prompt = random_prompt(rng, model.vocab_size(), 20);
    std::vector<int32_t> alone;
    generate::TokenGeneration gen(*loaded.model, prompt, params);
    gen.run([&](const generate::TokenLogprob& l) {
      alone.push_back(l.token);
      return true;
    });
    ScheduledRequest r{prompt, params, {}};
    r.options.token_events = true;
    const int64_t positions = model.positions, passes = model.passes;
    const auto got = drain(*scheduler.submit({r}), 1)[0];
    EXPECT_EQ(got.tokens, alone) << GetParam() << " request " << i;
    const auto n = static_cast<int64_t>(prompt.size()), k = *params.max_tokens;
    const int64_t chunks = (n + params.prefill_step_size - 1) / params.prefill_step_size;
    EXPECT_EQ(model.positions - positions, n + k - 1) << GetParam() << " request " << i;
    EXPECT_EQ(model.passes - passes, chunks + k - 1) << GetParam() << " request " << i;
  }
  EXPECT_EQ(scheduler.stats().rows, 0u);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, SchedulerFixtures,
                         ::testing::Values("llama", "gemma2", "gemma3_text", "starcoder2", "qwen3", "mixtral"));

// stories260K with its tokenizer: greedy rows equal Generation alone (tokens, text, EOS
// stop); seeded sampled rows, a stop string and a logits processor ride in the same batch
// and equal their single runs too.
TEST(BatchScheduler, MixedRequestsEqualGenerationAloneOnStories260K) {
  LMX_REQUIRE_STORIES();
  auto c = testing::stories260k();
  std::mt19937 rng(99);
  std::vector<ScheduledRequest> requests;
  for (int i = 0; i < 12; ++i) {
    ScheduledRequest r;
    r.prompt = random_prompt(rng, c->model().vocab_size(), 12);
    r.prompt[0] = 1;  // BOS
    r.params.max_tokens = std::uniform_int_distribution<int>(5, 60)(rng);
    r.params.temperature = 0;
    if (i % 3 == 1) {
      r.params.temperature = 0.8f;
      r.params.top_k = 20;
      r.params.repetition_penalty = 1.1f;
      r.params.seed = 7 + i;
    }
    if (i == 2) r.options.stop_strings = {"e"};
    if (i == 5) {
      r.params.logits_processors.push_back([](const std::vector<int32_t>& seq, std::vector<float>& l) {
        l[static_cast<size_t>(seq.size() % 300 + 10)] += 100.0f;  // a scripted reply
      });
    }
    r.options.eos_ids = c->eos_ids();
    r.options.token_events = true;
    requests.push_back(r);
  }
  BatchScheduler scheduler(c, {4});
  std::vector<std::shared_ptr<ScheduledGroup>> groups;
  for (const auto& r : requests) {
    groups.push_back(scheduler.submit({r}));
    std::this_thread::sleep_for(std::chrono::microseconds(std::uniform_int_distribution<int>(0, 2000)(rng)));
  }
  for (size_t i = 0; i < requests.size(); ++i) {
    const auto got = drain(*groups[i], 1)[0];
    Collected want;
    generate::GenerateOptions o = requests[i].options;
    generate::Generation alone(c->model(), c->tokenizer(), requests[i].prompt, requests[i].params, o);
    alone.run([&](const GenerationEvent& e) {
      if (e.kind == GenerationEvent::Kind::text) want.text += e.text;
      if (e.kind == GenerationEvent::Kind::info) want.info = e.info;
      return true;
    });
    EXPECT_EQ(got.tokens, alone.tokens()) << "sequence " << i;
    EXPECT_EQ(got.text, want.text) << "sequence " << i;
    EXPECT_EQ(got.info.stop_reason, want.info.stop_reason) << "sequence " << i;
    EXPECT_EQ(got.info.generated_tokens, want.info.generated_tokens) << "sequence " << i;
    EXPECT_EQ(got.info.prompt_tokens, static_cast<int64_t>(requests[i].prompt.size()));
  }
}

// A group cancelled from inside its 5th sampling step is never sampled again, while the
// row beside it runs on to its limit; the batch then empties.
TEST(BatchScheduler, CancelledRowLeavesBeforeTheNextStep) {
  LMX_REQUIRE_STORIES();
  auto c = testing::stories260k();
  BatchScheduler scheduler(c, {4});
  std::atomic<int> calls{0};
  std::shared_ptr<ScheduledGroup> cancelled;
  std::atomic<bool> ready{false};
  ScheduledRequest r;
  r.prompt = {1, 403, 407};
  r.params.temperature = 0;
  r.params.max_tokens = 1000;
  r.params.logit_bias = {{2, -100.0f}};  // no EOS
  r.params.logits_processors.push_back([&](const std::vector<int32_t>&, std::vector<float>&) {
    while (!ready.load()) std::this_thread::yield();
    if (++calls == 5) cancelled->cancel();
  });
  ScheduledRequest other = r;
  other.params.logits_processors.clear();
  other.params.max_tokens = 40;
  auto neighbour = scheduler.submit({other});
  cancelled = scheduler.submit({r});
  ready.store(true);
  const auto got = drain(*cancelled, 1)[0];
  EXPECT_EQ(calls.load(), 5);
  EXPECT_EQ(got.info.stop_reason, generate::StopReason::cancelled);
  EXPECT_EQ(got.info.generated_tokens, 5);
  EXPECT_FALSE(cancelled->timed_out());
  const auto n = drain(*neighbour, 1)[0];
  EXPECT_EQ(n.info.generated_tokens, 40);
  EXPECT_EQ(scheduler.stats().rows, 0u);
}

TEST(BatchScheduler, DeadlineEndsTheGroupAndBadPromptsAreRefused) {
  LMX_REQUIRE_STORIES();
  auto c = testing::stories260k();
  BatchScheduler scheduler(c, {2});
  ScheduledRequest r;
  r.prompt = {1, 403};
  r.params.max_tokens = 100000;
  r.params.logit_bias = {{2, -100.0f}};
  auto g = scheduler.submit({r, r}, std::chrono::steady_clock::now() + std::chrono::milliseconds(50));
  const auto got = drain(*g, 2);
  EXPECT_TRUE(g->timed_out());
  for (const auto& s : got) EXPECT_EQ(s.info.stop_reason, generate::StopReason::cancelled);
  r.prompt = {1, 100000};
  EXPECT_THROW(scheduler.submit({r}), InvalidArgument);
  r.prompt = {};
  EXPECT_THROW(scheduler.submit({r}), InvalidArgument);
  r.prompt = {1};
  r.params.kv_bits = 4;
  EXPECT_THROW(scheduler.submit({r}), InvalidArgument);
}

// A logits processor that throws ends its own sequence with the error; the row beside
// it runs to its limit and the scheduler keeps serving.
TEST(BatchScheduler, ThrowingLogitsProcessorFailsOnlyItsSequence) {
  LMX_REQUIRE_STORIES();
  auto c = testing::stories260k();
  BatchScheduler scheduler(c, {4});
  ScheduledRequest good;
  good.prompt = {1, 403, 407};
  good.params.temperature = 0;
  good.params.max_tokens = 30;
  good.params.logit_bias = {{2, -100.0f}};
  ScheduledRequest bad = good;
  bad.params.logits_processors.push_back([](const std::vector<int32_t>& seq, std::vector<float>&) {
    if (seq.size() > 5) throw InvalidArgument("constraint broken");
  });
  auto g1 = scheduler.submit({good});
  auto g2 = scheduler.submit({bad});
  const auto failed = drain(*g2, 1)[0];
  EXPECT_EQ(failed.info.stop_reason, generate::StopReason::cancelled);
  EXPECT_EQ(g2->error(), "constraint broken");
  EXPECT_EQ(drain(*g1, 1)[0].info.generated_tokens, 30);
  EXPECT_TRUE(g1->error().empty());
  EXPECT_EQ(drain(*scheduler.submit({good}), 1)[0].info.generated_tokens, 30);
}

}  // namespace
}  // namespace lmx
