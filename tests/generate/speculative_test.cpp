// Speculative decoding on stories260K: greedy output equal to plain decoding (whose ids
// equal llama2.c's, stories260k_test.cpp) with the model as its own draft and with a
// random draft of fewer layers; a chi-square test that sampled tokens follow the main
// model's distribution (and not the draft's); bad options refused.
#include "lmx/generate/speculative.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>
#include <vector>

#include "lmx/core/ops/nn.h"
#include "lmx/generate/token_iterator.h"
#include "lmx/io/llama2c_import.h"
#include "lmx/models/load.h"
#include "lmx/models/config_reader.h"
#include "lmx/models/quantize.h"
#include "lmx/models/random_init.h"
#include "lmx/models/registry.h"
#include "test_models.h"

namespace lmx::generate {
namespace {

using lmx::testing::shared_data;

// stories260K imported once into a temp folder; each call loads a fresh copy (a model
// that already generated once is not reused: every comparison starts from the same state).
std::unique_ptr<models::LanguageModel> fresh_stories() {
  struct Folder {
    std::filesystem::path dir =
        std::filesystem::temp_directory_path() / ("lmx-spec-stories-" + std::to_string(::getpid()));
    Folder() {
      const std::filesystem::path src = shared_data("models/stories260K");
      io::import_llama2c(src / "stories260K.bin", src / "tok512.bin", dir);
    }
    ~Folder() { std::filesystem::remove_all(dir); }
  };
  static Folder folder;
  return models::load_model(folder.dir).model;
}

const std::vector<int32_t> kPrompt = {1, 403, 407, 261, 378};  // BOS and four tokens

std::vector<int32_t> run(models::LanguageModel& model, const GenerateParameters& p, const SpeculativeOptions& spec,
                         SpeculativeStats* stats = nullptr) {
  TokenIteratorOptions o;
  o.check_memory = false;
  o.speculative = spec;
  TokenIterator it(model, kPrompt, p, nullptr, o);
  std::vector<int32_t> out;
  while (auto t = it.next()) out.push_back(*t);
  if (stats) *stats = it.speculative_stats();
  return out;
}

// stories260K's shape with `layers` layers and random weights (the same vocabulary).
std::unique_ptr<models::LanguageModel> random_stories_shape(int layers) {
  nlohmann::json cfg = {{"model_type", "llama"},       {"hidden_size", 64},       {"intermediate_size", 172},
                        {"num_hidden_layers", layers}, {"num_attention_heads", 8}, {"num_key_value_heads", 4},
                        {"vocab_size", 512},           {"rms_norm_eps", 1e-5},    {"tie_word_embeddings", true}};
  auto m = models::create_model(models::ConfigReader(cfg, "draft config"));
  models::RandomInitOptions ro;
  ro.dtype = Dtype::f32;
  ro.seed = 5;
  models::randomize_model(*m, ro);
  return m;
}

// Greedy: temperature 0 set explicitly (GenerateParameters defaults to 0.6, which samples
// from an unseeded generator and is neither greedy nor reproducible).
TEST(Speculative, GreedyEqualsPlainDecodingFor500TokensWithItselfAsDraft) {
  LMX_REQUIRE_STORIES();
  GenerateParameters p;
  p.temperature = 0;
  p.max_tokens = 500;
  const std::vector<int32_t> plain = run(*fresh_stories(), p, {});
  ASSERT_EQ(plain.size(), 500u);
  for (int n : {1, 4}) {
    SpeculativeStats s;
    auto m = fresh_stories(), d = fresh_stories();
    EXPECT_EQ(run(*m, p, {d.get(), n}, &s), plain) << n << " draft tokens";
    EXPECT_EQ(s.accepted, s.drafted);  // the same model agrees with itself
    EXPECT_GT(s.drafted, 0);
    // Every round but the last yields n + 1 tokens.
    EXPECT_LE(s.rounds, 500 / (n + 1) + 2);
  }
}

// MLX-quantized (4 and 8 bits): the verify pass's few-row matmuls (N + 1 = 4 and 8 rows)
// give each row the bits of the draft's one-row decode steps, so the model accepts every
// draft of its own and greedy output equals plain decoding.
TEST(Speculative, QuantizedModelAcceptsItsOwnDraftsAndEqualsPlainDecoding) {
  LMX_REQUIRE_STORIES();
  GenerateParameters p;
  p.temperature = 0;
  p.max_tokens = 200;
  for (int bits : {4, 8}) {
    auto quantized = [&] {
      auto m = fresh_stories();
      models::QuantizeOptions q;
      q.bits = bits;
      q.group_size = 64;
      EXPECT_FALSE(models::quantize_model(*m, q).empty());
      return m;
    };
    const std::vector<int32_t> plain = run(*quantized(), p, {});
    for (int n : {3, 7}) {
      SpeculativeStats s;
      auto m = quantized(), d = quantized();
      EXPECT_EQ(run(*m, p, {d.get(), n}, &s), plain) << bits << " bits, " << n << " draft tokens";
      EXPECT_EQ(s.accepted, s.drafted) << bits << " bits, " << n << " draft tokens";
      EXPECT_GT(s.drafted, 0);
    }
  }
}

TEST(Speculative, GreedyEqualsPlainDecodingWithASmallerRandomDraft) {
  LMX_REQUIRE_STORIES();
  auto draft = random_stories_shape(2);
  GenerateParameters p;
  p.temperature = 0;
  p.max_tokens = 300;
  const std::vector<int32_t> plain = run(*fresh_stories(), p, {});
  SpeculativeStats s;
  EXPECT_EQ(run(*fresh_stories(), p, {draft.get(), 3}, &s), plain);
  EXPECT_LT(s.accepted, s.drafted);  // a random draft is mostly rejected: the rollback path runs
  EXPECT_GT(s.rounds, 300 / 4);
}

// The main model's sampling distribution of the first generated token at temperature t.
std::vector<double> first_token_distribution(models::LanguageModel& m, float t) {
  Tensor logits = m.forward(Tensor::from_vector(kPrompt, {1, static_cast<int64_t>(kPrompt.size())}), nullptr);
  Tensor last = logits.select(1, -1).select(0, 0).contiguous();
  std::vector<double> p(static_cast<size_t>(last.numel()));
  double mx = -1e30, sum = 0;
  for (int64_t i = 0; i < last.numel(); ++i) mx = std::max(mx, static_cast<double>(last.data<float>()[i]) / t);
  for (int64_t i = 0; i < last.numel(); ++i) sum += p[i] = std::exp(last.data<float>()[i] / t - mx);
  for (double& v : p) v /= sum;
  return p;
}

// Pearson's statistic of counts against probabilities, tokens with an expected count
// under 5 pooled into one bin; `df` gets the degrees of freedom.
double chi_square(const std::vector<int>& counts, const std::vector<double>& p, int total, int& df) {
  double stat = 0, pooled_expected = 0, pooled_count = 0;
  int bins = 0;
  for (size_t i = 0; i < p.size(); ++i) {
    const double e = p[i] * total;
    if (e < 5) {
      pooled_expected += e;
      pooled_count += counts[i];
      continue;
    }
    stat += (counts[i] - e) * (counts[i] - e) / e;
    ++bins;
  }
  if (pooled_expected > 0) {
    stat += (pooled_count - pooled_expected) * (pooled_count - pooled_expected) / pooled_expected;
    ++bins;
  }
  df = bins - 1;
  return stat;
}

// The chi-square quantile at 1 - 1e-4 (Wilson-Hilferty; z = 3.719).
double chi_square_critical(int df) {
  const double k = df, z = 3.719;
  const double a = 1.0 - 2.0 / (9.0 * k) + z * std::sqrt(2.0 / (9.0 * k));
  return k * a * a * a;
}

TEST(Speculative, SampledTokensFollowTheMainModelsDistribution) {
  LMX_REQUIRE_STORIES();
  auto main = fresh_stories();
  auto draft = random_stories_shape(2);
  const float temp = 1.5f;  // flatter, so many tokens have expected counts above 5
  const std::vector<double> p = first_token_distribution(*main, temp);
  // A nearby wrong answer: half of p moved onto its most likely token.
  std::vector<double> wrong = p;
  for (double& v : wrong) v *= 0.5;
  wrong[static_cast<size_t>(std::max_element(p.begin(), p.end()) - p.begin())] += 0.5;
  const int samples = 500;
  std::vector<int> counts(p.size(), 0);
  int64_t drafted = 0, accepted = 0;
  for (int i = 0; i < samples; ++i) {
    GenerateParameters params;
    params.temperature = temp;
    params.seed = 1000 + i;
    params.max_tokens = 2;  // the first token comes out of a round with one draft
    SpeculativeStats s;
    const std::vector<int32_t> out = run(*main, params, {draft.get(), 1}, &s);
    ASSERT_EQ(out.size(), 2u);
    counts[static_cast<size_t>(out[0])]++;
    drafted += s.drafted;
    accepted += s.accepted;
  }
  // Some drafts are accepted and some rejected, so both branches of the rule are sampled.
  ASSERT_GT(accepted, samples / 50);
  ASSERT_LT(accepted, drafted);
  int df = 0;
  const double stat = chi_square(counts, p, samples, df);
  EXPECT_LT(stat, chi_square_critical(df)) << "df " << df;
  // The test has power: the same counts are far from the temperature-1 distribution.
  int df_w = 0;
  const double stat_wrong = chi_square(counts, wrong, samples, df_w);
  EXPECT_GT(stat_wrong, chi_square_critical(df_w)) << "df " << df_w;
}

TEST(Speculative, BadOptionsAreRefused) {
  LMX_REQUIRE_STORIES();
  auto m = fresh_stories();
  GenerateParameters p;
  p.max_tokens = 4;
  EXPECT_THROW(run(*m, p, {m.get(), 0}), InvalidArgument);
  p.top_logprobs = 2;
  EXPECT_THROW(run(*m, p, {m.get(), 2}), InvalidArgument);
}

}  // namespace
}  // namespace lmx::generate
