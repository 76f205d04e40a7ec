// Batch generation: left-padded prompts of different lengths decoded together give each
// row the logits transformers gives that prompt alone, and at temperature 0 the same
// tokens as generating it alone.
#include "lmx/generate/batch_generate.h"

#include <gtest/gtest.h>

#include "lmx/generate/generate.h"
#include "test_models.h"

namespace lmx {
namespace {

class BatchFixtures : public ::testing::TestWithParam<std::string> {};

// Row 1 is cut to 7 tokens (5 pad positions in front): its logits must equal the
// reference logits of its first 7 tokens (which depend only on those tokens).
TEST_P(BatchFixtures, LeftPaddedRowsMatchReferenceLogits) {
  auto loaded = models::load_model(testing::fixture(GetParam()));
  const auto ref = testing::fixture_reference(GetParam());
  std::vector<std::vector<int32_t>> prompts;
  for (int64_t b = 0; b < 2; ++b) {
    std::vector<int32_t> row;
    for (int64_t t = 0; t < (b == 0 ? 12 : 7); ++t)
      row.push_back(static_cast<int32_t>(ref.ids.select(0, b).select(0, t).item<int64_t>()));
    prompts.push_back(row);
  }
  Tensor logits = generate::batch_forward(*loaded.model, prompts);
  ASSERT_EQ(logits.dim(1), 12);
  for (int64_t b = 0; b < 2; ++b) {
    const int64_t n = static_cast<int64_t>(prompts[static_cast<size_t>(b)].size()), pad = 12 - n;
    for (int64_t t = 0; t < n; ++t) {
      EXPECT_LE(testing::relative_error(logits.select(0, b).select(0, pad + t).to_float_vector(),
                                        ref.logits.select(0, b).select(0, t).to_float_vector()),
                1e-4)
          << GetParam() << " row " << b << " token " << t;
    }
  }
}

// Not "phi3": its longrope switches to the long factors once the sequence passes 8
// tokens, so the 12-token reference is not the reference of a 7-token prefix.
INSTANTIATE_TEST_SUITE_P(
    Fixtures,
    BatchFixtures,
    ::testing::Values("llama", "gemma2", "gemma3_text", "starcoder2", "qwen3", "phi3_short", "gemma3n_text",
                      "gemma4_text", "gemma4_text_moe", "bitnet_packed"));

TEST(BatchGenerate, EachRowEqualsGeneratingItAloneOnStories260K) {
  LMX_REQUIRE_STORIES();
  auto c = testing::stories260k();
  const std::vector<std::vector<int32_t>> prompts = {{1}, {1, 403, 407, 261, 378, 300}, {1, 403}};
  generate::GenerateParameters p;
  p.temperature = 0;
  p.max_tokens = 40;
  const auto batch = generate::batch_generate(c->model(), prompts, p);
  ASSERT_EQ(batch.size(), prompts.size());
  for (size_t b = 0; b < prompts.size(); ++b) {
    generate::Generation alone(c->model(), c->tokenizer(), prompts[b], p, {});
    while (alone.next()) {
    }
    EXPECT_EQ(batch[b], alone.tokens()) << "row " << b;
  }
  // Rows stop at their own EOS.
  generate::BatchOptions o;
  o.eos_ids = {batch[0][2]};
  const auto stopped = generate::batch_generate(c->model(), prompts, p, o);
  EXPECT_EQ(stopped[0], std::vector<int32_t>(batch[0].begin(), batch[0].begin() + 2));
}

}  // namespace
}  // namespace lmx
