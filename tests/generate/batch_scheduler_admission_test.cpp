// Wired-memory admission in the batch scheduler: with a policy, a sequence starts only
// once the manager admits a ticket of its KV bytes (estimate_memory), the others wait in
// the queue, and every ticket ends with its sequence; one that could never fit ends at
// once with the manager's OutOfMemory. An injected manager with a recording backend
// (nothing is locked in RAM here).
#include <gtest/gtest.h>

#include <algorithm>
#include <random>

#include "lmx/generate/batch_scheduler.h"
#include "lmx/generate/wired_memory_estimate.h"
#include "lmx/models/load.h"
#include "test_models.h"

namespace lmx {
namespace {

using namespace generate;

class NullBackend : public WiredBackend {
 public:
  std::string name() const override { return "null"; }
  size_t current_limit() override { return 0; }
  std::string apply(size_t) override { return ""; }
  std::optional<size_t> recommended_working_set() override { return std::nullopt; }
};

WiredManagerConfig idle_config() {
  WiredManagerConfig c;
  c.baseline_override = 0;
  return c;
}

struct Outcome {
  std::vector<int32_t> tokens;
  GenerationInfo info;
  std::string error;
};

Outcome drain(ScheduledGroup& g) {
  Outcome r;
  while (auto e = g.next()) {
    if (e->event.kind == GenerationEvent::Kind::token) r.tokens.push_back(e->event.token.token);
    if (e->event.kind == GenerationEvent::Kind::info) r.info = e->event.info;
  }
  r.error = g.error();
  return r;
}

TEST(BatchSchedulerAdmission, QueuesWhatTheBudgetCannotHoldAndReleasesEveryTicket) {
  auto loaded = models::load_model(testing::fixture("llama"));
  models::LanguageModel& model = *loaded.model;
  WiredMemoryManager manager(std::make_shared<NullBackend>(), idle_config());
  // Tickets held at once, from the manager's own events.
  size_t held = 0, most_held = 0, started = 0, waits = 0;
  auto sub = manager.subscribe([&](const WiredEvent& e) {
    if (e.kind == WiredEvent::Kind::ticket_started) most_held = std::max(most_held, ++held), ++started;
    if (e.kind == WiredEvent::Kind::ticket_ended) --held;
    if (e.kind == WiredEvent::Kind::admission_wait) ++waits;
  });
  std::mt19937 rng(7);
  std::uniform_int_distribution<int32_t> tok(0, static_cast<int32_t>(model.vocab_size()) - 1);
  GenerateParameters params;
  params.temperature = 0;
  params.max_tokens = 12;
  const int64_t prompt_len = 9;
  const size_t kv = estimate_memory(model, prompt_len, params).kv_bytes;
  ASSERT_GT(kv, 0u);

  SchedulerOptions o;
  o.max_concurrent = 8;  // rows for all: only the budget holds them back
  o.admission_policy = std::make_shared<BudgetPolicy>(0, 2 * kv + kv / 2, "test");  // two at a time
  o.wired_manager = &manager;
  std::vector<std::vector<int32_t>> prompts;
  std::vector<std::shared_ptr<ScheduledGroup>> groups;
  {
    BatchScheduler scheduler(model, nullptr, o);
    for (int i = 0; i < 6; ++i) {
      ScheduledRequest r;
      for (int64_t j = 0; j < prompt_len; ++j) r.prompt.push_back(tok(rng));
      r.params = params;
      r.options.token_events = true;
      prompts.push_back(r.prompt);
      groups.push_back(scheduler.submit({r}));
    }
    for (size_t i = 0; i < groups.size(); ++i) {
      const Outcome run = drain(*groups[i]);
      EXPECT_EQ(run.error, "") << i;
      EXPECT_EQ(run.info.stop_reason, StopReason::length) << i;
      // The tokens of generating the prompt alone: waiting changed nothing.
      std::vector<int32_t> alone;
      TokenGeneration gen(model, prompts[i], params);
      gen.run([&](const TokenLogprob& l) {
        alone.push_back(l.token);
        return true;
      });
      EXPECT_EQ(run.tokens, alone) << i;
    }
    const SchedulerStats s = scheduler.stats();
    EXPECT_GT(s.admission_refusals, 0u);
    EXPECT_EQ(s.admitted_kv_bytes, 0u);
  }
  EXPECT_EQ(started, 6u);
  EXPECT_EQ(most_held, 2u) << "the budget holds two sequences' KV bytes";
  EXPECT_GT(waits, 0u);
  EXPECT_EQ(held, 0u);
  EXPECT_EQ(manager.ticket_count(), 0u);
}

TEST(BatchSchedulerAdmission, ASequenceThatCanNeverFitEndsWithOutOfMemory) {
  auto loaded = models::load_model(testing::fixture("llama"));
  models::LanguageModel& model = *loaded.model;
  WiredMemoryManager manager(std::make_shared<NullBackend>(), idle_config());
  GenerateParameters params;
  params.temperature = 0;
  params.max_tokens = 4;
  const size_t kv = estimate_memory(model, 3, params).kv_bytes;
  SchedulerOptions o;
  o.admission_policy = std::make_shared<BudgetPolicy>(0, kv / 2, "small");
  o.wired_manager = &manager;
  BatchScheduler scheduler(model, nullptr, o);
  ScheduledRequest r;
  r.prompt = {1, 2, 3};
  r.params = params;
  r.options.token_events = true;
  const Outcome run = drain(*scheduler.submit({r}));
  EXPECT_NE(run.error.find("wired memory"), std::string::npos) << run.error;
  EXPECT_EQ(run.info.stop_reason, StopReason::cancelled);
  EXPECT_TRUE(run.tokens.empty());
  EXPECT_EQ(manager.ticket_count(), 0u);
}

}  // namespace
}  // namespace lmx
