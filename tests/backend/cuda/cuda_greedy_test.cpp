// Greedy sampling on the device (lmx/generate/device_greedy.h): with the argmax taken where
// the logits are, the single-sequence loop (graph replays and eager steps) and the batch
// scheduler (prefill and decode steps, several rows) yield the tokens of the host's argmax
// (LMX_DEVICE_GREEDY=0), with logit bias and penalties too, and a row that asks for logprobs
// keeps the host path beside them.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "cuda_test_util.h"
#include "lmx/generate/batch_scheduler.h"
#include "lmx/generate/generate.h"
#include "lmx/models/load.h"

namespace lmx {
namespace {

namespace fs = std::filesystem;
using generate::GenerateParameters;
using generate::GenerationEvent;

class CudaGreedy : public testing::CudaTest {};

fs::path fixture(const std::string& name) {
  const char* env = std::getenv("LMX_TEST_MODELS");
  return (env ? fs::path(env) : fs::path(LMX_SOURCE_DIR) / "tests/data/models") / name;
}

std::vector<int32_t> alone(models::LanguageModel& model, const std::vector<int32_t>& prompt,
                           const GenerateParameters& params) {
  std::vector<int32_t> out;
  generate::TokenGeneration gen(model, prompt, params);
  gen.run([&](const generate::TokenLogprob& t) {
    out.push_back(t.token);
    return true;
  });
  return out;
}

std::vector<std::vector<int32_t>> scheduled(models::LanguageModel& model, const std::vector<std::vector<int32_t>>& prompts,
                                            const std::vector<GenerateParameters>& params) {
  generate::BatchScheduler scheduler(model, nullptr, {4});
  std::vector<generate::ScheduledRequest> requests;
  for (size_t i = 0; i < prompts.size(); ++i) {
    generate::ScheduledRequest r{prompts[i], params[i], {}};
    r.options.token_events = true;
    requests.push_back(std::move(r));
  }
  auto group = scheduler.submit(std::move(requests));
  std::vector<std::vector<int32_t>> out(prompts.size());
  while (auto e = group->next()) {
    if (e->event.kind == GenerationEvent::Kind::token) out.at(e->index).push_back(e->event.token.token);
  }
  EXPECT_GT(scheduler.stats().step_rows, scheduler.stats().steps) << "rows were never batched";
  return out;
}

TEST_F(CudaGreedy, DeviceArgmaxGivesTheHostsTokens) {
  const fs::path dir = fixture("llama");
  if (!fs::exists(dir / "config.json")) GTEST_SKIP() << "no fixture at " << dir;
  auto loaded = models::load_model(dir);
  models::LanguageModel& model = *loaded.model;
  for (auto& p : model.parameters())
    if (p.tensor->defined()) *p.tensor = p.tensor->to(Device::cuda());
  const int64_t vocab = model.vocab_size();
  std::vector<std::vector<int32_t>> prompts;
  for (int r = 0; r < 4; ++r) {
    std::vector<int32_t> p;
    for (int i = 0; i < 9 + 3 * r; ++i) p.push_back(static_cast<int32_t>((i * 53 + r * 17 + 7) % vocab));
    prompts.push_back(p);
  }
  GenerateParameters greedy;
  greedy.temperature = 0;
  greedy.max_tokens = 40;  // past a cache bucket: graph captures and eager steps both
  std::vector<std::vector<int32_t>> host;
  {
    const testing::ScopedEnv off("LMX_DEVICE_GREEDY", "0");
    for (const auto& p : prompts) host.push_back(alone(model, p, greedy));
  }
  for (size_t r = 0; r < prompts.size(); ++r) {
    ASSERT_EQ(host[r].size(), 40u);
    EXPECT_EQ(alone(model, prompts[r], greedy), host[r]) << "single sequence, row " << r;
  }
  // All rows greedy: argmax of the batch's logits on the device, against the same batch
  // sampled on the host, and against each prompt generated alone.
  const std::vector<GenerateParameters> all_greedy(4, greedy);
  std::vector<std::vector<int32_t>> host_batch;
  {
    const testing::ScopedEnv off("LMX_DEVICE_GREEDY", "0");
    host_batch = scheduled(model, prompts, all_greedy);
  }
  EXPECT_EQ(scheduled(model, prompts, all_greedy), host_batch);
  EXPECT_EQ(host_batch, host);
  // Bias and penalties: picked from the rows' maxima and touched values; row 0 bans the token
  // greedy picked first (the device's maximum lowered: that row comes back whole).
  std::vector<GenerateParameters> processed(4, greedy);
  processed[0].logit_bias[host[0][0]] = -100.0f;
  processed[1].repetition_penalty = 1.5f;
  processed[2].presence_penalty = 1.0f;
  processed[2].logit_bias[host[2][3]] = 2.0f;
  processed[3].frequency_penalty = 0.5f;
  std::vector<std::vector<int32_t>> host_processed, host_processed_batch;
  {
    const testing::ScopedEnv off("LMX_DEVICE_GREEDY", "0");
    for (size_t r = 0; r < prompts.size(); ++r) host_processed.push_back(alone(model, prompts[r], processed[r]));
    host_processed_batch = scheduled(model, prompts, processed);
  }
  EXPECT_NE(host_processed[0], host[0]);  // the ban changed something
  for (size_t r = 0; r < prompts.size(); ++r)
    EXPECT_EQ(alone(model, prompts[r], processed[r]), host_processed[r]) << "single sequence, row " << r;
  EXPECT_EQ(scheduled(model, prompts, processed), host_processed_batch);
  // One row wants logprobs: the step's logits come to the host for every row.
  std::vector<GenerateParameters> mixed(4, greedy);
  mixed[2].logprobs = true;
  EXPECT_EQ(scheduled(model, prompts, mixed), host);
}

}  // namespace
}  // namespace lmx
