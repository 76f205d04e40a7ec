// Cross-encoders: the classifier head assembled on the encoder (against the pooler and
// classifier computed by hand from the stored weights) and HF's longest_first pair
// truncation on hand-made encodings.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>

#include "embed_test_util.h"
#include "lmx/base/error.h"
#include "lmx/io/safetensors.h"
#include "lmx/models/config_reader.h"
#include "lmx/models/embed/cross_encoder.h"
#include "lmx/models/embed/embedder.h"
#include "lmx/models/embed/encoder.h"
#include "lmx/tokenizer/tokenizer.h"

namespace lmx::models::embed {
namespace {

namespace fs = std::filesystem;

TEST(CrossEncoder, BertHeadIsClassifierOfTanhPoolerOfFirstToken) {
  test::TempDir tmp;
  nlohmann::json cfg = test::tiny_bert_config({{"architectures", {"BertForSequenceClassification"}}, {"num_labels", 2}});
  test::write_json(tmp.path() / "config.json", cfg);
  auto enc = create_encoder(ConfigReader(cfg, "test"), true);
  std::vector<std::pair<std::string, std::vector<int64_t>>> tensors;
  for (const auto& p : enc->parameters()) tensors.push_back({"bert." + p.name, p.shape});
  tensors.push_back({"classifier.weight", {2, 16}});
  tensors.push_back({"classifier.bias", {2}});
  test::write_random_tensors(tmp.path() / "model.safetensors", tensors, 31);

  const CrossEncoder c = CrossEncoder::load(tmp.path());
  EXPECT_EQ(c.num_labels(), 2);
  const std::vector<int32_t> ids = {2, 9, 14, 3, 40, 7, 0, 0}, types = {0, 0, 0, 0, 1, 1, 0, 0};
  TokenBatch batch{Tensor::from_vector(ids, {2, 4}), Tensor::from_vector(types, {2, 4}), {4, 2}};
  const auto logits = c.logits(batch).to_float_vector();

  // The same weights read as a plain embedder (pooler dropped) give hidden[:, 0].
  Embedder e = Embedder::load(tmp.path(), test::ids_only({PoolingMode::cls}));
  const Tensor first = e.pool_and_project(e.last_hidden_state(batch), batch.lengths);  // [2, 16]
  const auto f = first.to_float_vector();
  auto file = io::SafetensorsFile::open(tmp.path() / "model.safetensors");
  auto w = [&](const char* n) { return reinterpret_cast<const float*>(file.at(n).data); };
  for (int r = 0; r < 2; ++r) {
    std::vector<double> pooled(16);
    for (int o = 0; o < 16; ++o) {
      double acc = w("bert.pooler.dense.bias")[o];
      for (int i = 0; i < 16; ++i) acc += static_cast<double>(w("bert.pooler.dense.weight")[o * 16 + i]) * f[static_cast<size_t>(r * 16 + i)];
      pooled[static_cast<size_t>(o)] = std::tanh(acc);
    }
    for (int l = 0; l < 2; ++l) {
      double acc = w("classifier.bias")[l];
      for (int i = 0; i < 16; ++i) acc += w("classifier.weight")[l * 16 + i] * pooled[static_cast<size_t>(i)];
      EXPECT_NEAR(logits[static_cast<size_t>(r * 2 + l)], acc, 1e-5) << r << " " << l;
    }
  }
}

tokenizer::Encoding pair(int first, int second) {
  // [CLS] first... [SEP] second... [SEP], ordinary ids 10 + position.
  tokenizer::Encoding e;
  auto push = [&](int32_t id, int32_t type, uint8_t special) {
    e.ids.push_back(id);
    e.type_ids.push_back(type);
    e.attention_mask.push_back(1);
    e.special_tokens_mask.push_back(special);
  };
  push(101, 0, 1);
  for (int i = 0; i < first; ++i) push(10 + i, 0, 0);
  push(102, 0, 1);
  for (int i = 0; i < second; ++i) push(50 + i, 1, 0);
  push(102, 1, 1);
  return e;
}

TEST(CrossEncoder, LongestFirstTruncation) {
  tokenizer::Encoding e = pair(3, 10);
  EXPECT_FALSE(truncate_pair_longest_first(e, 16));
  EXPECT_TRUE(truncate_pair_longest_first(e, 10));  // 16 -> 10: the document loses 6 (first keeps 3)
  EXPECT_EQ(e.ids, (std::vector<int32_t>{101, 10, 11, 12, 102, 50, 51, 52, 53, 102}));
  EXPECT_EQ(e.type_ids, (std::vector<int32_t>{0, 0, 0, 0, 0, 1, 1, 1, 1, 1}));
  e = pair(6, 5);  // 14 -> 8: 6,5 -> 5,5 -> 5,4 -> 4,4 -> 4,3 -> 3,3 -> 3,2
  EXPECT_TRUE(truncate_pair_longest_first(e, 8));
  EXPECT_EQ(e.ids, (std::vector<int32_t>{101, 10, 11, 12, 102, 50, 51, 102}));
  // A tie: HF transformers 5.17 gives the first run the floor half
  // (tests/data/embed/pair_tokenization.json has a real case).
  e = pair(7, 7);  // 17 -> 16: budget 13 -> 6 + 7
  EXPECT_TRUE(truncate_pair_longest_first(e, 16));
  EXPECT_EQ(e.ids, (std::vector<int32_t>{101, 10, 11, 12, 13, 14, 15, 102, 50, 51, 52, 53, 54, 55, 56, 102}));
  e = pair(2, 2);
  EXPECT_THROW(truncate_pair_longest_first(e, 2), InvalidArgument);
}

TEST(CrossEncoder, RejectsOtherArchitectures) {
  test::TempDir tmp;
  test::write_random_encoder(tmp.path(), {{"model_type", "distilbert"}, {"vocab_size", 64}, {"dim", 16}, {"hidden_dim", 32},
                                          {"n_layers", 1}, {"n_heads", 4}}, 3);
  try {
    CrossEncoder::load(tmp.path());
    FAIL() << "no error";
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("not a supported cross-encoder"), std::string::npos) << e.what();
  }
}

// A causal LM folder is a yes/no reranker; without its tokenizer, or with one that has no
// "yes" token, it says so.
TEST(CrossEncoder, YesNoRerankerNeedsTokenizerWithYesAndNo) {
  const fs::path fixture = fs::path(LMX_SOURCE_DIR) / "tests/data/embed/qwen3_reranker";
  if (!fs::exists(fixture / "model.safetensors")) GTEST_SKIP() << "fixture not generated yet: " << fixture;
  test::TempDir tmp;
  for (const char* f : {"config.json", "model.safetensors"}) fs::copy_file(fixture / f, tmp.path() / f);
  auto error_of = [&] {
    try {
      CrossEncoder::load(tmp.path());
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  std::string msg = error_of();
  EXPECT_NE(msg.find("a yes/no reranker needs its tokenizer.json"), std::string::npos) << msg;
  nlohmann::json tok = nlohmann::json::parse(std::ifstream(fixture / "tokenizer.json"));
  tok["model"]["vocab"].erase("yes");
  test::write_json(tmp.path() / "tokenizer.json", tok);
  msg = error_of();
  EXPECT_NE(msg.find("the tokenizer has no token \"yes\""), std::string::npos) << msg;
}

}  // namespace
}  // namespace lmx::models::embed
