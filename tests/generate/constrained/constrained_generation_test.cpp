// Constrained generation end to end: the random-weight fixture models (whose free output
// is noise) with a synthetic vocabulary, and stories260K with its real tokenizer, greedy
// and sampled, must end by themselves (EOS) with text that parses and validates against
// the schema in Python's jsonschema. On a real 151k-token vocabulary (Qwen3), the mask
// equals the brute-force reference along a constrained walk.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <random>

#include "../test_models.h"
#include "json_validator.h"
#include "lmx/generate/constrained/constrained_decoding.h"
#include "lmx/generate/constrained/json_schema_compiler.h"
#include "lmx/generate/constrained/token_masker.h"
#include "lmx/generate/generate.h"
#include "lmx/tokenizer/tokenizer.h"

namespace lmx::generate {
namespace {

using Json = nlohmann::ordered_json;

GenerateParameters params_for(int run, const LogitsProcessor& processor) {
  GenerateParameters p;
  p.max_tokens = 3000;
  p.temperature = run == 0 ? 0.0f : 1.0f;  // run 0 greedy, the others sampled
  p.seed = static_cast<uint64_t>(run);
  p.logits_processors.push_back(processor);
  return p;
}

class ConstrainedFixtures : public ::testing::TestWithParam<std::string> {};

TEST_P(ConstrainedFixtures, OutputValidatesAgainstTheSchema) {
  auto loaded = models::load_model(testing::fixture(GetParam()));
  const std::vector<std::string> bytes = testing::synthetic_vocabulary();
  auto vocabulary = std::make_shared<const constrained::TokenVocabulary>(bytes, std::set<int32_t>{0});
  std::vector<testing::SchemaOutput> outputs;
  for (const std::string& text : testing::test_schemas()) {
    const Json schema = Json::parse(text);
    auto grammar = json_schema_grammar(schema);
    for (int run = 0; run < 3; ++run) {
      GenerateParameters p = params_for(run, constrained_logits_processor(grammar, vocabulary));
      TokenGeneration gen(*loaded.model, {5, 17, 42, 99}, p, {0});
      std::string out;
      const StopReason reason = gen.run([&](const TokenLogprob& t) {
        out += bytes[static_cast<size_t>(t.token)];
        return true;
      });
      EXPECT_EQ(reason, StopReason::stop) << text << " run " << run << ": " << out;
      outputs.push_back({schema, out});
    }
  }
  LMX_EXPECT_VALID_OUTPUTS(outputs);
}

INSTANTIATE_TEST_SUITE_P(Models, ConstrainedFixtures,
                         ::testing::Values("llama", "qwen2", "qwen3", "gemma2", "phi3"));

TEST(ConstrainedStories260K, OutputValidatesAgainstTheSchema) {
  LMX_REQUIRE_STORIES();
  auto container = testing::stories260k();
  std::vector<testing::SchemaOutput> outputs;
  std::vector<std::string> schemas = testing::test_schemas();
  schemas.push_back(R"({"type":"object","properties":{"story":{"type":"string","maxLength":40}},"required":["story"]})");
  for (const std::string& text : schemas) {
    const Json schema = Json::parse(text);
    auto grammar = json_schema_grammar(schema);
    for (int run = 0; run < 3; ++run) {
      GenerateParameters p =
          params_for(run, constrained_logits_processor(grammar, container->constraint_vocabulary()));
      GenerateOptions opts;
      opts.eos_ids = container->eos_ids();
      const std::vector<int32_t> prompt = container->tokenizer().encode("Once upon a time");
      std::string out;
      StopReason reason = StopReason::cancelled;
      container->perform([&](models::LanguageModel& lm, const tokenizer::Tokenizer& tok) {
        Generation gen(lm, tok, prompt, p, opts);
        reason = gen.run([&](const GenerationEvent& e) {
          if (e.kind == GenerationEvent::Kind::text) out += e.text;
          return true;
        });
      });
      EXPECT_EQ(reason, StopReason::stop) << text << " run " << run << ": " << out;
      outputs.push_back({schema, out});
    }
  }
  LMX_EXPECT_VALID_OUTPUTS(outputs);
}

TEST(ConstrainedQwen3Vocabulary, MaskEqualsBruteForce) {
  const auto dir = std::filesystem::path(LMX_SOURCE_DIR) / ".cache/npm-tokenizers/qwen3";
  LMX_REQUIRE_SHARED(dir / "tokenizer.json");
  const auto tok = tokenizer::Tokenizer::from_folder(dir);
  ASSERT_GT(tok.vocab_size(), 150000u);
  std::set<int32_t> eos{*tok.eos_id()};
  auto vocabulary = constraint_vocabulary(tok, eos);
  const Json schema = Json::parse(testing::test_schemas()[0]);
  auto matcher = std::make_shared<const constrained::GrammarMatcher>(json_schema_grammar(schema));
  constrained::TokenMasker masker(matcher, vocabulary);
  constrained::MatchState s = matcher->start();
  std::mt19937 rng(3);
  std::string out;
  for (int step = 0; step < 12; ++step) {
    const constrained::TokenMask mask = *masker.mask(s);
    std::vector<int32_t> ids;
    for (size_t id = 0; id < vocabulary->size(); ++id) {
      const auto i = static_cast<int32_t>(id);
      bool want = false;
      if (eos.count(i)) {
        want = matcher->can_end(s);
      } else if (!vocabulary->bytes(i).empty()) {
        constrained::MatchState t = s;
        want = matcher->advance(t, vocabulary->bytes(i));
      }
      ASSERT_EQ(mask[id] != 0, want) << "token " << id << " '" << vocabulary->bytes(i) << "' after " << out;
      if (want && !eos.count(i)) ids.push_back(i);
    }
    ASSERT_FALSE(ids.empty());
    const int32_t pick = ids[rng() % ids.size()];
    out += vocabulary->bytes(pick);
    ASSERT_TRUE(matcher->advance(s, vocabulary->bytes(pick)));
  }
}

}  // namespace
}  // namespace lmx::generate
