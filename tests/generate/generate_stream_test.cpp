// The generation stream over the stories260K model: stop strings never leak a prefix,
// max_tokens ends with "length", EOS with "stop", cancellation with "cancelled".
#include <gtest/gtest.h>

#include <thread>

#include "lmx/base/error.h"
#include "lmx/generate/generate.h"
#include "lmx/generate/model_container.h"
#include "lmx/io/llama2c_import.h"
#include "shared_data.h"

namespace lmx {
namespace {

namespace fs = std::filesystem;

std::vector<std::pair<std::string, double>> g_load_stages;

std::shared_ptr<generate::ModelContainer> stories() {
  static std::shared_ptr<generate::ModelContainer> c = [] {
    const fs::path src = testing::shared_data("models/stories260K");
    const fs::path dir = fs::temp_directory_path() / ("lmx-stream-" + std::to_string(::getpid()));
    io::import_llama2c(src / "stories260K.bin", src / "tok512.bin", dir);
    auto loaded = generate::ModelContainer::load(
        dir.string(), [](std::string_view stage, double f) { g_load_stages.emplace_back(stage, f); });
    fs::remove_all(dir);
    return loaded;
  }();
  return c;
}

struct StreamRun {
  std::vector<std::string> chunks;
  std::string text;
  generate::GenerationInfo info;
};

StreamRun run(generate::GenerateParameters p, generate::GenerateOptions o, std::function<void(generate::Generation&)> during = {}) {
  auto c = stories();
  generate::Generation gen(c->model(), c->tokenizer(), {1}, p, std::move(o));
  StreamRun r;
  int events = 0;
  while (auto e = gen.next()) {
    if (e->kind == generate::GenerationEvent::Kind::text) {
      r.chunks.push_back(e->text);
      r.text += e->text;
    } else {
      r.info = e->info;
    }
    if (during && ++events == 5) during(gen);
  }
  return r;
}

class GenerateStream : public ::testing::Test {
 protected:
  void SetUp() override { LMX_REQUIRE_SHARED(testing::shared_data("models/stories260K/stories260K.bin")); }
};

TEST_F(GenerateStream, StopStringCutsBeforeItAndNeverLeaksAPrefix) {
  generate::GenerateParameters p;
  p.temperature = 0;
  p.max_tokens = 100;
  generate::GenerateOptions o;
  o.stop_strings = {"in the park"};
  StreamRun r = run(p, o);
  EXPECT_EQ(r.text, "Once upon a time, there was a little girl named Lily. She loved to play outside ");
  EXPECT_EQ(r.info.stop_reason, generate::StopReason::stop);
  for (const auto& c : r.chunks) EXPECT_EQ(c.find("in the"), std::string::npos) << c;
}

TEST_F(GenerateStream, MaxTokensEndsWithLength) {
  generate::GenerateParameters p;
  p.temperature = 0;
  p.max_tokens = 7;
  StreamRun r = run(p, {});
  EXPECT_EQ(r.info.generated_tokens, 7);
  EXPECT_EQ(r.info.prompt_tokens, 1);
  EXPECT_EQ(r.info.stop_reason, generate::StopReason::length);
  EXPECT_EQ(r.text, "Once upon a time, there was");
}

TEST_F(GenerateStream, EosTokenEndsWithStop) {
  generate::GenerateParameters p;
  p.temperature = 0;
  p.max_tokens = 50;
  generate::GenerateOptions o;
  o.eos_ids = {261};  // the third greedy token (" a"): not emitted
  StreamRun r = run(p, o);
  EXPECT_EQ(r.info.stop_reason, generate::StopReason::stop);
  EXPECT_EQ(r.info.generated_tokens, 3);
  EXPECT_EQ(r.text, "Once upon");
}

TEST_F(GenerateStream, CancelFromAnotherThreadEndsWithCancelled) {
  generate::GenerateParameters p;
  p.temperature = 0;
  p.max_tokens = 200;
  StreamRun r = run(p, {}, [](generate::Generation& g) { std::thread([&g] { g.cancel(); }).join(); });
  EXPECT_EQ(r.info.stop_reason, generate::StopReason::cancelled);
  EXPECT_LT(r.info.generated_tokens, 200);
}

TEST_F(GenerateStream, PromptTokenOutsideVocabularyIsAClearError) {
  auto c = stories();
  EXPECT_THROW(generate::Generation(c->model(), c->tokenizer(), {1, 600}, {}, {}), InvalidArgument);
}

TEST(ModelContainerApi, LoadReportsProgressAndGenerateStreamsThePreparedPrompt) {
  LMX_REQUIRE_SHARED(testing::shared_data("models/stories260K/stories260K.bin"));
  auto c = stories();
  using Stage = std::pair<std::string, double>;
  EXPECT_EQ(g_load_stages, (std::vector<Stage>{{"resolve", 0.0}, {"weights", 0.1}, {"tokenizer", 0.9}, {"ready", 1.0}}));
  generate::GenerateParameters p;
  p.temperature = 0;
  p.max_tokens = 20;
  generate::UserInput input;
  input.prompt = "Once upon a time";
  std::string text;
  const auto info = c->generate(input, p, [&](const generate::GenerationEvent& e) {
    if (e.kind == generate::GenerationEvent::Kind::text) text += e.text;
    return true;
  });
  // The same as a Generation over prepare(input) (a base model: BOS + the prompt).
  generate::GenerateOptions o;
  o.eos_ids = c->eos_ids();
  generate::Generation gen(c->model(), c->tokenizer(), c->prepare(input), p, o);
  std::string expected;
  while (auto e = gen.next())
    if (e->kind == generate::GenerationEvent::Kind::text) expected += e->text;
  EXPECT_EQ(text, expected);
  EXPECT_EQ(info.generated_tokens, 20);
  EXPECT_EQ(info.stop_reason, generate::StopReason::length);
  // Stopping early from the callback ends it as cancelled.
  int chunks = 0;
  EXPECT_EQ(c->generate(input, p, [&](const generate::GenerationEvent&) { return ++chunks < 2; }).stop_reason,
            generate::StopReason::cancelled);
}

}  // namespace
}  // namespace lmx
