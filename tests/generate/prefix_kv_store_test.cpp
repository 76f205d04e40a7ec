// The prefix cache the batch scheduler shares across sequences: with shared "system
// prompts" and random suffixes, every greedy sequence served from cached blocks yields
// the tokens and log-probabilities of the same workload without the cache; each
// sequence reuses exactly the whole blocks of its longest common prefix with the
// prompts prefilled before it; the prefill passes compute exactly the tokens not
// reused; a tiny budget evicts the least recently used blocks but never those a
// running sequence holds; model kinds where reuse is not exact never use it.
#include "lmx/generate/prefix_kv_store.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <thread>

#include "cached_prefix.h"
#include "lmx/generate/batch_scheduler.h"
#include "lmx/models/quantize.h"
#include "test_models.h"

namespace lmx {
namespace {

using generate::BatchScheduler;
using generate::GenerationEvent;
using generate::ScheduledGroup;
using generate::ScheduledRequest;
using generate::SchedulerOptions;

constexpr size_t kBlock = 16;
constexpr size_t kBigBudget = size_t{1} << 30;

// Log-probabilities with and without the cache differ by float rounding only: a cached
// prefix's keys were computed in another chunking (other row counts in the projections
// and attention), each a sum of at most a few hundred f32 products (relative error
// ~1e-6), carried through a few layers into a log-softmax of values O(1..10). Measured
// on this workload: at most 8.6e-6 (and 0 where the cache is skipped); tokens equal.
constexpr float kLogprobTolerance = 1e-4f;

struct SequenceRun {
  std::vector<int32_t> tokens;
  std::vector<float> logprobs;
  std::string text;
  generate::GenerationInfo info;
};

SequenceRun drain_one(ScheduledGroup& g) {
  SequenceRun out;
  while (auto e = g.next()) {
    switch (e->event.kind) {
      case GenerationEvent::Kind::token:
        out.tokens.push_back(e->event.token.token);
        out.logprobs.push_back(e->event.token.logprob);
        break;
      case GenerationEvent::Kind::info:
        out.info = e->event.info;
        break;
      default:
        out.text += e->event.text;
        break;
    }
  }
  return out;
}

std::vector<int32_t> random_tokens(std::mt19937& rng, int64_t vocab, size_t n) {
  std::uniform_int_distribution<int32_t> tok(3, static_cast<int32_t>(vocab) - 1);  // no BOS / EOS
  std::vector<int32_t> out(n);
  for (auto& t : out) t = tok(rng);
  return out;
}

// Two system prompts (20..70 tokens) each followed by random suffixes (1..24 tokens),
// an exact repeat, and a prompt of 2 blocks + 1 token repeated (a hit on every prompt
// token but the last, which must still run).
std::vector<std::vector<int32_t>> shared_prefix_prompts(std::mt19937& rng,
                                                        int64_t vocab,
                                                        int32_t bos) {
  std::vector<std::vector<int32_t>> systems;
  for (size_t len : {std::uniform_int_distribution<size_t>(20, 50)(rng),
                     std::uniform_int_distribution<size_t>(30, 70)(rng)}) {
    auto s = random_tokens(rng, vocab, len);
    if (bos >= 0) s[0] = bos;
    systems.push_back(s);
  }
  std::vector<std::vector<int32_t>> prompts;
  for (int i = 0; i < 12; ++i) {
    auto p = systems[static_cast<size_t>(i % 2)];
    const auto suffix =
        random_tokens(rng, vocab, std::uniform_int_distribution<size_t>(1, 24)(rng));
    p.insert(p.end(), suffix.begin(), suffix.end());
    prompts.push_back(p);
  }
  prompts.push_back(prompts[3]);
  std::vector<int32_t> exact(
      prompts[0].begin(), prompts[0].begin() + std::min<size_t>(prompts[0].size(), 2 * kBlock + 1));
  prompts.push_back(exact);
  prompts.push_back(exact);
  return prompts;
}

struct Workload {
  std::vector<SequenceRun> runs;
  generate::SchedulerStats stats;
};

Workload run_workload(BatchScheduler& scheduler,
                      const std::vector<std::vector<int32_t>>& prompts,
                      const std::vector<int>& max_tokens,
                      const std::set<int32_t>& eos) {
  std::mt19937 rng(5);  // the same arrival times with and without the cache
  std::vector<std::shared_ptr<ScheduledGroup>> groups;
  for (size_t i = 0; i < prompts.size(); ++i) {
    ScheduledRequest r;
    r.prompt = prompts[i];
    r.params.temperature = 0;
    r.params.logprobs = true;
    r.params.max_tokens = max_tokens[i];
    r.params.prefill_step_size = std::uniform_int_distribution<int>(5, 40)(rng);
    r.options.token_events = true;
    r.options.eos_ids = eos;
    groups.push_back(scheduler.submit({r}));
    std::this_thread::sleep_for(
        std::chrono::microseconds(std::uniform_int_distribution<int>(0, 2000)(rng)));
  }
  Workload w;
  for (auto& g : groups) w.runs.push_back(drain_one(*g));
  w.stats = scheduler.stats();
  return w;
}

// The same tokens, text and (to float rounding) log-probabilities.
void expect_same_output(const SequenceRun& got, const SequenceRun& want, const std::string& what) {
  EXPECT_EQ(got.tokens, want.tokens) << what;
  EXPECT_EQ(got.text, want.text) << what;
  ASSERT_EQ(got.logprobs.size(), want.logprobs.size()) << what;
  for (size_t k = 0; k < want.logprobs.size(); ++k)
    EXPECT_NEAR(got.logprobs[k], want.logprobs[k], kLogprobTolerance) << what << " token " << k;
}

// The workload on a scheduler without the cache, then on one with it. make(options)
// returns the scheduler.
template <typename Make>
std::pair<Workload, Workload> without_and_with(const Make& make,
                                               size_t rows,
                                               const std::vector<std::vector<int32_t>>& prompts,
                                               const std::vector<int>& max_tokens,
                                               const std::set<int32_t>& eos) {
  SchedulerOptions o{rows};
  Workload without = run_workload(*make(o), prompts, max_tokens, eos);
  o.prefix_cache_bytes = kBigBudget;
  Workload with = run_workload(*make(o), prompts, max_tokens, eos);
  return {std::move(without), std::move(with)};
}

// Greedy with the cache equals greedy without, token for token and logprob for
// logprob; cached counts are the true common-prefix blocks; the prefill computed
// exactly the tokens not reused.
void expect_cache_is_transparent(const Workload& without,
                                 const Workload& with,
                                 const std::vector<std::vector<int32_t>>& prompts,
                                 const std::string& what) {
  ASSERT_EQ(without.runs.size(), prompts.size());
  ASSERT_EQ(with.runs.size(), prompts.size());
  uint64_t all = 0, reused = 0;
  size_t hits = 0;
  for (size_t i = 0; i < prompts.size(); ++i) {
    const SequenceRun& a = without.runs[i];
    const SequenceRun& b = with.runs[i];
    expect_same_output(b, a, what + " sequence " + std::to_string(i));
    EXPECT_EQ(a.info.cached_prompt_tokens, 0);
    const int64_t want = testing::expected_cached_tokens(prompts, i, kBlock);
    EXPECT_EQ(b.info.cached_prompt_tokens, want) << what << " sequence " << i;
    EXPECT_EQ(b.info.prompt_tokens + b.info.cached_prompt_tokens,
              static_cast<int64_t>(prompts[i].size()));
    all += prompts[i].size();
    reused += static_cast<uint64_t>(want);
    hits += want > 0;
  }
  // The counted speed effect: prefill passes ran only what the cache did not hold.
  EXPECT_EQ(without.stats.prefill_tokens, all) << what;
  EXPECT_EQ(with.stats.prefill_tokens, all - reused) << what;
  EXPECT_GT(reused, all / 3) << what << ": the workload should mostly hit";
  EXPECT_EQ(with.stats.prefix_cache.lookups, prompts.size());
  EXPECT_EQ(with.stats.prefix_cache.hits, hits);
  EXPECT_EQ(with.stats.prefix_cache.reused_tokens, reused);
  EXPECT_EQ(with.stats.prefix_cache.evictions, 0u);
  EXPECT_GT(with.stats.prefix_cache.bytes, 0u);
}

// A fixture folder, or one of its quantized variants (a quantization.json naming the
// source folder, bits and group size): the source quantized by lmx.
models::LoadedModel load_fixture(const std::string& name) {
  const auto dir = testing::fixture(name);
  if (!std::filesystem::exists(dir / "quantization.json")) return models::load_model(dir);
  nlohmann::json q;
  std::ifstream(dir / "quantization.json") >> q;
  auto loaded = models::load_model(testing::fixture(q["source"].get<std::string>()));
  models::QuantizeOptions o;
  o.bits = q["bits"].get<int>();
  o.group_size = q["group_size"].get<int>();
  models::quantize_model(*loaded.model, o);
  return loaded;
}

class PrefixCacheFixtures : public ::testing::TestWithParam<std::string> {};

TEST_P(PrefixCacheFixtures, GreedyWithTheCacheEqualsWithout) {
  auto loaded = load_fixture(GetParam());
  models::LanguageModel& model = *loaded.model;
  std::mt19937 rng(std::hash<std::string>{}(GetParam()) % 1000);
  const auto prompts = shared_prefix_prompts(rng, model.vocab_size(), -1);
  std::vector<int> max_tokens;
  for (size_t i = 0; i < prompts.size(); ++i)
    max_tokens.push_back(std::uniform_int_distribution<int>(1, 10)(rng));
  const auto [without, with] = without_and_with(
      [&](SchedulerOptions o) { return std::make_unique<BatchScheduler>(model, nullptr, o); }, 3,
      prompts, max_tokens, {});
  expect_cache_is_transparent(without, with, prompts, GetParam());
}

// Plain, sliding-window (gemma2, gemma3_text, gpt_oss with sinks), MoE, latent
// attention (deepseek_v2) and quantized-weight models.
INSTANTIATE_TEST_SUITE_P(Fixtures,
                         PrefixCacheFixtures,
                         ::testing::Values("llama",
                                           "gemma2",
                                           "gemma3_text",
                                           "qwen3",
                                           "mixtral",
                                           "starcoder2",
                                           "deepseek_v2",
                                           "gpt_oss",
                                           "llama_q4_g32"));

TEST(PrefixCache, GreedyWithTheCacheEqualsWithoutOnStories260K) {
  LMX_REQUIRE_STORIES();
  auto c = testing::stories260k();
  std::mt19937 rng(260);
  const auto prompts = shared_prefix_prompts(rng, c->model().vocab_size(), 1);
  std::vector<int> max_tokens;
  for (size_t i = 0; i < prompts.size(); ++i)
    max_tokens.push_back(std::uniform_int_distribution<int>(10, 60)(rng));
  const auto [without, with] =
      without_and_with([&](SchedulerOptions o) { return std::make_unique<BatchScheduler>(c, o); },
                       4, prompts, max_tokens, c->eos_ids());
  expect_cache_is_transparent(without, with, prompts, "stories260K");
}

// Model kinds whose keys a prefix cache cannot reuse exactly: length-dependent RoPE
// (dynamic NTK past max_position_embeddings = 8, longrope) and recurrent state layers.
// The cache stays out of their way, and their output is unchanged.
class PrefixCacheSkipped : public ::testing::TestWithParam<std::string> {};

TEST_P(PrefixCacheSkipped, NeverUsesTheCache) {
  auto loaded = models::load_model(testing::fixture(GetParam()));
  models::LanguageModel& model = *loaded.model;
  std::mt19937 rng(8);
  const auto prompts = shared_prefix_prompts(rng, model.vocab_size(), -1);
  const std::vector<int> max_tokens(prompts.size(), 3);
  const auto [without, with] = without_and_with(
      [&](SchedulerOptions o) { return std::make_unique<BatchScheduler>(model, nullptr, o); }, 3,
      prompts, max_tokens, {});
  for (size_t i = 0; i < prompts.size(); ++i) {
    expect_same_output(with.runs[i], without.runs[i],
                       GetParam() + " sequence " + std::to_string(i));
    EXPECT_EQ(with.runs[i].info.cached_prompt_tokens, 0);
  }
  EXPECT_EQ(with.stats.prefix_cache.lookups, 0u);
  EXPECT_EQ(with.stats.prefix_cache.blocks, 0u);
  EXPECT_EQ(with.stats.prefill_tokens, without.stats.prefill_tokens);
}

INSTANTIATE_TEST_SUITE_P(
    Fixtures,
    PrefixCacheSkipped,
    ::testing::Values("llama_dynamic_rope", "phi3", "mamba", "lfm2", "qwen3_next"));

// One request at a time through a scheduler whose cache holds `budget` bytes.
struct Serial {
  BatchScheduler scheduler;
  Serial(models::LanguageModel& model, size_t budget, bool partial_blocks = false)
      : scheduler(model, nullptr, options(budget, partial_blocks)) {}
  static SchedulerOptions options(size_t budget, bool partial_blocks) {
    SchedulerOptions o{2};
    o.prefix_cache_bytes = budget;
    o.prefix_partial_blocks = partial_blocks;
    return o;
  }
  SequenceRun run(const std::vector<int32_t>& prompt, int max_tokens = 1) {
    ScheduledRequest r;
    r.prompt = prompt;
    r.params.temperature = 0;
    r.params.max_tokens = max_tokens;
    r.params.logprobs = true;
    r.options.token_events = true;
    return drain_one(*scheduler.submit({r}));
  }
};

std::vector<int32_t> concat(std::initializer_list<std::vector<int32_t>> parts) {
  std::vector<int32_t> out;
  for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

// A budget of three blocks: A's two blocks, then B's two evict A's second (the least
// recently used leaf), then A again reuses its first block and its second evicts B's
// second, and so on; the bytes never pass the budget.
TEST(PrefixCache, TinyBudgetEvictsTheLeastRecentlyUsedBlocks) {
  auto loaded = models::load_model(testing::fixture("llama"));
  models::LanguageModel& model = *loaded.model;
  std::mt19937 rng(3);
  const auto a1 = random_tokens(rng, model.vocab_size(), kBlock),
             a2 = random_tokens(rng, model.vocab_size(), kBlock);
  const auto b1 = random_tokens(rng, model.vocab_size(), kBlock),
             b2 = random_tokens(rng, model.vocab_size(), kBlock);
  const std::vector<int32_t> tail{7};
  size_t block_bytes = 0;
  {
    Serial probe(model, kBigBudget);
    probe.run(concat({a1, tail}));
    block_bytes = probe.scheduler.stats().prefix_cache.bytes;
    ASSERT_EQ(probe.scheduler.stats().prefix_cache.blocks, 1u);
  }
  Serial s(model, 3 * block_bytes);
  auto stats = [&] { return s.scheduler.stats().prefix_cache; };
  EXPECT_EQ(s.run(concat({a1, a2, tail})).info.cached_prompt_tokens, 0);
  EXPECT_EQ(stats().blocks, 2u);
  EXPECT_EQ(s.run(concat({b1, b2, tail})).info.cached_prompt_tokens, 0);
  EXPECT_EQ(stats().blocks, 3u);
  EXPECT_EQ(stats().evictions, 1u);
  EXPECT_EQ(s.run(concat({a1, a2, tail})).info.cached_prompt_tokens,
            static_cast<int64_t>(kBlock));  // a2 went
  EXPECT_EQ(stats().evictions, 2u);
  EXPECT_EQ(s.run(concat({b1, b2, tail})).info.cached_prompt_tokens,
            static_cast<int64_t>(kBlock));  // b2 went
  EXPECT_EQ(stats().evictions, 3u);         // a2 again, the least recently used leaf
  EXPECT_EQ(s.run(concat({b1, b2, tail})).info.cached_prompt_tokens,
            static_cast<int64_t>(2 * kBlock));
  EXPECT_EQ(s.run(concat({a1, a2, tail})).info.cached_prompt_tokens, static_cast<int64_t>(kBlock));
  EXPECT_EQ(stats().blocks, 3u);
  EXPECT_EQ(stats().bytes, 3 * block_bytes);
  // A block larger than the whole budget is never stored.
  Serial none(model, block_bytes - 1);
  none.run(concat({a1, tail}));
  EXPECT_EQ(none.run(concat({a1, tail})).info.cached_prompt_tokens, 0);
  EXPECT_EQ(none.scheduler.stats().prefix_cache.blocks, 0u);
}

// While a sequence runs, the blocks it uses are referenced: a request that needs room
// under a two-block budget cannot evict them (it stores nothing), and a third request
// with the running one's prompt reuses both blocks. Once the running one has gone,
// its blocks can go too.
TEST(PrefixCache, BlocksOfARunningSequenceAreNeverEvicted) {
  auto loaded = models::load_model(testing::fixture("llama"));
  models::LanguageModel& model = *loaded.model;
  std::mt19937 rng(4);
  const auto a = random_tokens(rng, model.vocab_size(), 2 * kBlock + 1);
  const auto b = random_tokens(rng, model.vocab_size(), 2 * kBlock + 1);
  size_t block_bytes = 0;
  {
    Serial probe(model, kBigBudget);
    probe.run(a);
    block_bytes = probe.scheduler.stats().prefix_cache.bytes / 2;
  }
  Serial s(model, 2 * block_bytes);
  ScheduledRequest running;
  running.prompt = a;
  running.params.temperature = 0;
  running.params.max_tokens = 1000000;  // until cancelled
  auto held = s.scheduler.submit({running});
  EXPECT_EQ(s.run(b).info.cached_prompt_tokens, 0);
  EXPECT_EQ(s.scheduler.stats().prefix_cache.evictions, 0u);
  EXPECT_EQ(s.scheduler.stats().prefix_cache.blocks, 2u);
  EXPECT_EQ(s.run(a).info.cached_prompt_tokens, static_cast<int64_t>(2 * kBlock));
  EXPECT_EQ(s.scheduler.stats().rows, 1u) << "the first sequence should still be running";
  held->cancel();
  drain_one(*held);
  EXPECT_EQ(s.run(b).info.cached_prompt_tokens, 0);
  EXPECT_EQ(s.scheduler.stats().prefix_cache.evictions, 2u);
  EXPECT_EQ(s.run(b).info.cached_prompt_tokens, static_cast<int64_t>(2 * kBlock));
}

// A conversation's next turn (prompt + reply + a new message) reuses the blocks of the
// reply too: a finished row stores what its cache row holds (the prompt and every
// generated token but the last), and the next turn answers as without the cache.
class PrefixCacheReplies : public ::testing::TestWithParam<std::string> {};

TEST_P(PrefixCacheReplies, TheNextTurnReusesTheReply) {
  auto loaded = models::load_model(testing::fixture(GetParam()));
  models::LanguageModel& model = *loaded.model;
  std::mt19937 rng(11);
  for (int round = 0; round < 3; ++round) {
    const auto first =
        random_tokens(rng, model.vocab_size(), std::uniform_int_distribution<size_t>(5, 40)(rng));
    const int reply_tokens = std::uniform_int_distribution<int>(10, 50)(rng);
    Serial plain(model, 0), cached(model, kBigBudget);
    const SequenceRun a = plain.run(first, reply_tokens);
    const SequenceRun b = cached.run(first, reply_tokens);
    ASSERT_EQ(b.tokens, a.tokens);
    auto next = concat({first, a.tokens, random_tokens(rng, model.vocab_size(), 5)});
    const SequenceRun want = plain.run(next, 8);
    const SequenceRun got = cached.run(next, 8);
    expect_same_output(got, want, GetParam() + " round " + std::to_string(round));
    const auto held = first.size() + a.tokens.size() - 1;  // the first turn's cache row
    EXPECT_EQ(got.info.cached_prompt_tokens, static_cast<int64_t>(held / kBlock * kBlock))
        << GetParam();
    EXPECT_EQ(
        cached.scheduler.stats().prefill_tokens,
        first.size() + next.size() - static_cast<size_t>(got.info.cached_prompt_tokens));
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures,
                         PrefixCacheReplies,
                         ::testing::Values("llama", "gemma2", "qwen3"));

// With partial blocks a sequence also takes the start of the cached block (or partial
// tail) after its whole ones: a repeated prompt runs its last token only, and one that
// leaves an earlier prompt inside a block reuses up to there; both answer as without the
// cache. What is reusable from a finished sequence: its prompt and reply but the last
// token (stored), as far as the prompts agree, within the new prefill; from one that
// has only prefilled (a tiny max_tokens of 1 stores nothing more): its prompt.
class PrefixCachePartial : public ::testing::TestWithParam<std::string> {};

TEST_P(PrefixCachePartial, ARepeatedPromptRunsItsLastTokenOnly) {
  auto loaded = models::load_model(testing::fixture(GetParam()));
  models::LanguageModel& model = *loaded.model;
  std::mt19937 rng(17);
  for (int round = 0; round < 3; ++round) {
    const auto first =
        random_tokens(rng, model.vocab_size(), std::uniform_int_distribution<size_t>(18, 60)(rng));
    const int reply_tokens = std::uniform_int_distribution<int>(1, 30)(rng);
    Serial plain(model, 0), cached(model, kBigBudget, true);
    const SequenceRun a = plain.run(first, reply_tokens);
    const SequenceRun b = cached.run(first, reply_tokens);
    ASSERT_EQ(b.tokens, a.tokens);
    EXPECT_EQ(b.info.cached_prompt_tokens, 0);
    const auto stored = static_cast<int64_t>(first.size() + b.tokens.size() - 1);
    const auto repeat = static_cast<int64_t>(first.size()) - 1;
    const std::string what = GetParam() + " round " + std::to_string(round);
    // The same prompt again: everything but its last token (as far as stored).
    const uint64_t before = cached.scheduler.stats().prefill_tokens;
    const SequenceRun again = cached.run(first, reply_tokens);
    expect_same_output(again, a, what + " repeat");
    EXPECT_EQ(again.info.cached_prompt_tokens, std::min(repeat, stored)) << what;
    EXPECT_EQ(cached.scheduler.stats().prefill_tokens - before, first.size() - std::min(repeat, stored)) << what;
    // A prompt leaving `first` inside a block (not on a boundary).
    size_t keep = std::uniform_int_distribution<size_t>(2, first.size() - 1)(rng);
    if (keep % kBlock == 0) --keep;
    auto other = std::vector<int32_t>(first.begin(), first.begin() + static_cast<std::ptrdiff_t>(keep));
    auto tail = random_tokens(rng, model.vocab_size(), 6);
    if (tail[0] == first[keep]) tail[0] = first[keep] == 3 ? 4 : 3;
    other.insert(other.end(), tail.begin(), tail.end());
    const SequenceRun want = plain.run(other, 8);
    const SequenceRun got = cached.run(other, 8);
    expect_same_output(got, want, what + " other");
    EXPECT_EQ(got.info.cached_prompt_tokens, std::min(static_cast<int64_t>(keep), stored)) << what;
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures,
                         PrefixCachePartial,
                         ::testing::Values("llama", "gemma2", "qwen3"));

}  // namespace
}  // namespace lmx
