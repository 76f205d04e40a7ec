// Embedder invariants that need no Hugging Face reference: batching and padding never
// change a row (bit for bit), the Dense / Normalize / Matryoshka steps against hand
// computation, truncation, prompts, and clear errors for bad folders and inputs.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <random>

#include "embed_test_util.h"
#include "lmx/base/error.h"
#include "lmx/io/safetensors.h"
#include "lmx/models/embed/embedder.h"
#include "lmx/models/embed/encoder.h"
#include "lmx/tokenizer/tokenizer.h"

namespace lmx::models::embed {
namespace {

namespace fs = std::filesystem;
using test::TempDir;

std::vector<std::vector<int32_t>> random_inputs(const std::vector<int>& lengths, int vocab, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int32_t> id(2, vocab - 1);
  std::vector<std::vector<int32_t>> out;
  for (int n : lengths) {
    std::vector<int32_t> v(static_cast<size_t>(n));
    for (auto& x : v) x = id(rng);
    out.push_back(v);
  }
  return out;
}

std::vector<float> row(const Tensor& t, int64_t r) { return t.select(0, r).contiguous().to_float_vector(); }

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// One encoder folder per architecture the invariants run on.
void make_folder(const fs::path& dir, const std::string& arch, unsigned seed) {
  nlohmann::json cfg;
  if (arch == "bert") cfg = test::tiny_bert_config();
  if (arch == "roberta") {
    cfg = test::tiny_bert_config({{"model_type", "roberta"}, {"pad_token_id", 1}, {"type_vocab_size", 1},
                                  {"max_position_embeddings", 42}, {"hidden_act", "gelu_new"}});
  }
  if (arch == "distilbert") {
    cfg = {{"model_type", "distilbert"}, {"vocab_size", 64}, {"dim", 16}, {"hidden_dim", 32}, {"n_layers", 2},
           {"n_heads", 4}, {"max_position_embeddings", 40}, {"activation", "gelu"}, {"pad_token_id", 0}};
  }
  // The older config keys (global_attn_every_n_layers, *_rope_theta; nomic's n_embd, ...):
  // the parity fixtures cover transformers v5's.
  if (arch == "modernbert") {
    cfg = {{"model_type", "modernbert"}, {"vocab_size", 64}, {"hidden_size", 16}, {"intermediate_size", 24},
           {"num_hidden_layers", 3}, {"num_attention_heads", 4}, {"local_attention", 4},
           {"global_attn_every_n_layers", 2}, {"global_rope_theta", 160000.0}, {"local_rope_theta", 10000.0},
           {"max_position_embeddings", 64}, {"pad_token_id", 0}};
  }
  if (arch == "nomic_bert") {
    cfg = {{"model_type", "nomic_bert"}, {"vocab_size", 64}, {"n_embd", 16}, {"n_inner", 32}, {"n_layer", 2},
           {"n_head", 4}, {"n_positions", 64}, {"rotary_emb_base", 1000}, {"layer_norm_epsilon", 1e-12},
           {"activation_function", "swiglu"}, {"type_vocab_size", 2}, {"pad_token_id", 0}};
  }
  if (arch == "gemma3_text") {
    cfg = {{"model_type", "gemma3_text"}, {"vocab_size", 64}, {"hidden_size", 16}, {"intermediate_size", 32},
           {"num_hidden_layers", 3}, {"num_attention_heads", 4}, {"num_key_value_heads", 2}, {"head_dim", 8},
           {"sliding_window", 6}, {"layer_types", {"sliding_attention", "sliding_attention", "full_attention"}},
           {"use_bidirectional_attention", true}, {"query_pre_attn_scalar", 8}, {"max_position_embeddings", 64},
           {"pad_token_id", 0}};
  }
  test::write_random_encoder(dir, cfg, seed);
}

class BatchInvariance : public ::testing::TestWithParam<std::string> {};

TEST_P(BatchInvariance, MixedLengthBatchEqualsEachInputAloneBitForBit) {
  TempDir tmp;
  make_folder(tmp.path(), GetParam(), 11);
  test::write_st_modules(tmp.path(), 16, {"mean_tokens", "max_tokens", "lasttoken"}, {}, true, 3);
  Embedder e = Embedder::load(tmp.path(), test::ids_only());
  const auto inputs = random_inputs({5, 1, 17, 9, 33, 2, 17, 12}, 64, 7);
  EmbedOptions small;
  small.max_batch_tokens = 40;  // micro-batches of different shapes
  std::vector<std::pair<size_t, size_t>> progress;
  small.progress = [&](size_t done, size_t total) { progress.push_back({done, total}); };
  const Tensor batched = e.embed_tokens(inputs, small).values;
  const Tensor one_batch = e.embed_tokens(inputs).values;
  ASSERT_EQ(batched.shape(), (Shape{8, 48}));
  ASSERT_GT(progress.size(), 2u);
  EXPECT_EQ(progress.back(), (std::pair<size_t, size_t>{8, 8}));
  for (size_t i = 0; i < inputs.size(); ++i) {
    const Tensor alone = e.embed_tokens(std::span(&inputs[i], 1)).values;
    EXPECT_TRUE(same_bits(row(batched, static_cast<int64_t>(i)), row(alone, 0))) << "input " << i;
    EXPECT_TRUE(same_bits(row(one_batch, static_cast<int64_t>(i)), row(alone, 0))) << "input " << i;
  }
}

TEST_P(BatchInvariance, HiddenStateOfRealTokensIgnoresPadding) {
  TempDir tmp;
  make_folder(tmp.path(), GetParam(), 12);
  Embedder e = Embedder::load(tmp.path(), test::ids_only());
  const auto inputs = random_inputs({9, 4}, 64, 8);
  std::vector<int32_t> ids(18, e.model_type() == "roberta" ? 1 : 0);
  std::copy(inputs[0].begin(), inputs[0].end(), ids.begin());
  std::copy(inputs[1].begin(), inputs[1].end(), ids.begin() + 9);
  const Tensor h = e.last_hidden_state({Tensor::from_vector(ids, {2, 9}), Tensor(), {9, 4}});
  const Tensor alone = e.last_hidden_state({Tensor::from_vector(inputs[1], {1, 4}), Tensor(), {4}});
  EXPECT_TRUE(same_bits(h.slice(0, 1, 2).slice(1, 0, 4).contiguous().to_float_vector(),
                        alone.contiguous().to_float_vector()));
}

INSTANTIATE_TEST_SUITE_P(Embed, BatchInvariance,
                         ::testing::Values("bert", "roberta", "distilbert", "modernbert", "nomic_bert", "gemma3_text"));

TEST(Embedder, PlainFolderPoolsMeanAndNormalizes) {
  TempDir tmp;
  make_folder(tmp.path(), "bert", 13);
  Embedder e = Embedder::load(tmp.path(), test::ids_only());
  EXPECT_EQ(e.pooling(), (std::vector<PoolingMode>{PoolingMode::mean}));
  EXPECT_TRUE(e.normalizes());
  const auto inputs = random_inputs({6}, 64, 9);
  const Tensor v = e.embed_tokens(inputs).values;
  double sq = 0;
  for (float x : v.to_float_vector()) sq += static_cast<double>(x) * x;
  EXPECT_NEAR(sq, 1.0, 1e-5);
  // Mean of the hidden state by hand, then normalized.
  const Tensor h = e.last_hidden_state({Tensor::from_vector(inputs[0], {1, 6}), Tensor(), {6}}).contiguous();
  const auto hv = h.to_float_vector();
  std::vector<double> mean(16, 0.0);
  for (int s = 0; s < 6; ++s)
    for (int d = 0; d < 16; ++d) mean[static_cast<size_t>(d)] += hv[static_cast<size_t>(s * 16 + d)] / 6.0;
  double norm = 0;
  for (double m : mean) norm += m * m;
  norm = std::sqrt(norm);
  const auto got = v.to_float_vector();
  for (int d = 0; d < 16; ++d) EXPECT_NEAR(got[static_cast<size_t>(d)], mean[static_cast<size_t>(d)] / norm, 1e-6);
}

TEST(Embedder, DenseTanhAndMatryoshkaAgainstHandComputation) {
  TempDir plain, dense;
  make_folder(plain.path(), "bert", 14);
  make_folder(dense.path(), "bert", 14);  // the same encoder weights
  test::write_st_modules(plain.path(), 16, {"cls_token"}, {}, false, 5);
  test::write_st_modules(dense.path(), 16, {"cls_token"},
                         {{{"in", 16}, {"out", 6}, {"bias", true}, {"activation", "torch.nn.modules.activation.Tanh"}}},
                         true, 5);
  Embedder p = Embedder::load(plain.path(), test::ids_only());
  Embedder d = Embedder::load(dense.path(), test::ids_only());
  EXPECT_EQ(d.dimension(), 6);
  const auto inputs = random_inputs({7, 3}, 64, 10);
  const auto pooled = p.embed_tokens(inputs).values.to_float_vector();  // [2, 16]
  auto file = io::SafetensorsFile::open(dense.path() / "2_Dense" / "model.safetensors");
  const float* w = reinterpret_cast<const float*>(file.at("linear.weight").data);  // [6, 16]
  const float* b = reinterpret_cast<const float*>(file.at("linear.bias").data);
  EmbedOptions raw;
  raw.normalize = false;
  const auto got = d.embed_tokens(inputs, raw).values.to_float_vector();
  std::vector<double> want(12);
  for (int r = 0; r < 2; ++r) {
    for (int o = 0; o < 6; ++o) {
      double acc = b[o];
      for (int i = 0; i < 16; ++i) acc += static_cast<double>(w[o * 16 + i]) * pooled[static_cast<size_t>(r * 16 + i)];
      want[static_cast<size_t>(r * 6 + o)] = std::tanh(acc);
      EXPECT_NEAR(got[static_cast<size_t>(r * 6 + o)], want[static_cast<size_t>(r * 6 + o)], 1e-5);
    }
  }
  // Matryoshka: the first 4 values, normalized.
  EmbedOptions four;
  four.dimensions = 4;
  const Tensor m = d.embed_tokens(inputs, four).values;
  ASSERT_EQ(m.shape(), (Shape{2, 4}));
  for (int r = 0; r < 2; ++r) {
    double n = 0;
    for (int o = 0; o < 4; ++o) n += want[static_cast<size_t>(r * 6 + o)] * want[static_cast<size_t>(r * 6 + o)];
    for (int o = 0; o < 4; ++o) {
      EXPECT_NEAR(m.to_float_vector()[static_cast<size_t>(r * 4 + o)], want[static_cast<size_t>(r * 6 + o)] / std::sqrt(n),
                  1e-5);
    }
  }
  four.dimensions = 7;
  EXPECT_THROW(d.embed_tokens(inputs, four), InvalidArgument);
}

TEST(Embedder, TruncatesAtMaxSeqLengthAndCounts) {
  TempDir tmp;
  make_folder(tmp.path(), "bert", 15);
  test::write_json(tmp.path() / "sentence_bert_config.json", {{"max_seq_length", 8}});
  Embedder e = Embedder::load(tmp.path(), test::ids_only());
  EXPECT_EQ(e.max_length(), 8);
  auto inputs = random_inputs({20, 5, 8, 9}, 64, 11);
  const Embeddings got = e.embed_tokens(inputs);
  EXPECT_EQ(got.truncated, 2u);
  std::vector<std::vector<int32_t>> cut = {std::vector<int32_t>(inputs[0].begin(), inputs[0].begin() + 8)};
  EXPECT_TRUE(same_bits(row(got.values, 0), row(e.embed_tokens(cut).values, 0)));
}

TEST(Embedder, PositionTableBoundsTheLength) {
  TempDir tmp;
  make_folder(tmp.path(), "roberta", 16);  // 42 positions, pad id 1: 40 usable
  Embedder e = Embedder::load(tmp.path(), test::ids_only());
  EXPECT_EQ(e.max_length(), 40);
  EXPECT_EQ(e.embed_tokens(random_inputs({100000}, 64, 12)).truncated, 1u);
}

// A tiny BERT with the real all-MiniLM-L6-v2 tokenizer (copied into the temporary folder).
class MiniLmText : public ::testing::Test {
 protected:
  void SetUp() override {
    const fs::path src = "../shared/data/tokenizers/all-MiniLM-L6-v2-tokenizer-and-config";
    if (!fs::exists(src)) GTEST_SKIP() << "shared data missing: " << src;
    test::write_random_encoder(tmp_.path(), test::tiny_bert_config({{"vocab_size", 30522}, {"max_position_embeddings", 64}}), 17);
    for (const char* f : {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"}) {
      fs::copy_file(src / f, tmp_.path() / f);
    }
    test::write_st_modules(tmp_.path(), 16, {"mean_tokens"}, {}, true, 6);
    test::write_json(tmp_.path() / "sentence_bert_config.json", {{"max_seq_length", 32}});
    test::write_json(tmp_.path() / "config_sentence_transformers.json",
                     {{"prompts", {{"query", "query: "}, {"document", ""}}}, {"default_prompt_name", nullptr}});
  }
  TempDir tmp_;
};

TEST_F(MiniLmText, TextsEqualTheirTokenIds) {
  Embedder e = Embedder::load(tmp_.path());
  const std::vector<std::string> texts = {"Hello world!", "", "A somewhat longer sentence about embeddings."};
  const Embeddings got = e.embed(texts);
  std::vector<std::vector<int32_t>> ids;
  for (const auto& t : texts) ids.push_back(e.tokenizer().encode(t));
  EXPECT_EQ(ids[1], (std::vector<int32_t>{101, 102}));  // the empty string is [CLS] [SEP]
  const Tensor want = e.embed_tokens(ids).values;
  for (int64_t i = 0; i < 3; ++i) EXPECT_TRUE(same_bits(row(got.values, i), row(want, i))) << i;
  EXPECT_EQ(got.truncated, 0u);
}

TEST_F(MiniLmText, PromptIsPrependedAndUnknownPromptsAreNamed) {
  Embedder e = Embedder::load(tmp_.path());
  const std::vector<std::string> texts = {"what is lmx"}, prefixed = {"query: what is lmx"};
  EmbedOptions q;
  q.prompt_name = "query";
  EXPECT_TRUE(same_bits(row(e.embed(texts, q).values, 0), row(e.embed(prefixed).values, 0)));
  q.prompt_name = "passage";
  try {
    e.embed(texts, q);
    FAIL() << "no error";
  } catch (const InvalidArgument& err) {
    EXPECT_NE(std::string(err.what()).find("prompts: document, query"), std::string::npos) << err.what();
  }
}

TEST_F(MiniLmText, LongTextIsCutKeepingTheFinalSep) {
  Embedder e = Embedder::load(tmp_.path());
  std::string long_text;
  for (int i = 0; i < 20000; ++i) long_text += "word ";  // about 100k characters
  const std::vector<std::string> texts = {long_text};
  const Embeddings got = e.embed(texts);
  EXPECT_EQ(got.truncated, 1u);
  std::vector<int32_t> ids = e.tokenizer().encode(long_text);
  ids.resize(31);
  ids.push_back(102);
  const std::vector<std::vector<int32_t>> cut = {ids};
  EXPECT_TRUE(same_bits(row(got.values, 0), row(e.embed_tokens(cut).values, 0)));
}

TEST(EmbedderErrors, BadInputsAreNamed) {
  TempDir tmp;
  make_folder(tmp.path(), "bert", 18);
  Embedder e = Embedder::load(tmp.path(), test::ids_only());
  const std::vector<std::vector<int32_t>> empty_input = {{3, 4}, {}};
  EXPECT_THROW(e.embed_tokens(empty_input), InvalidArgument);
  EXPECT_THROW(e.embed_tokens(std::vector<std::vector<int32_t>>{}), InvalidArgument);
  EXPECT_THROW(e.embed_tokens(std::vector<std::vector<int32_t>>{{3, 64}}), InvalidArgument);  // outside the vocabulary
  EXPECT_THROW(e.embed(std::vector<std::string>{"text"}), InvalidArgument);                   // no tokenizer
}

std::string load_error(const fs::path& dir) {
  try {
    Embedder::load(dir, test::ids_only());
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(EmbedderErrors, ModuleMissingFolder) {
  TempDir tmp;
  make_folder(tmp.path(), "bert", 19);
  test::write_st_modules(tmp.path(), 16, {"mean_tokens"}, {}, true, 7);
  fs::remove_all(tmp.path() / "1_Pooling");
  const std::string msg = load_error(tmp.path());
  EXPECT_NE(msg.find("modules.json"), std::string::npos) << msg;
  EXPECT_NE(msg.find("'1_Pooling', which is not a folder"), std::string::npos) << msg;
}

TEST(EmbedderErrors, DenseOfTheWrongShape) {
  TempDir tmp;
  make_folder(tmp.path(), "bert", 20);
  const nlohmann::json dense = {{"in", 12}, {"out", 4}, {"bias", true}, {"activation", "torch.nn.modules.linear.Identity"}};
  test::write_st_modules(tmp.path(), 16, {"mean_tokens"}, {dense}, true, 8);
  std::string msg = load_error(tmp.path());
  EXPECT_NE(msg.find("2_Dense/config.json': in_features 12 does not match the 16 values"), std::string::npos) << msg;
  // The config agrees with the pooling but the stored matrix does not.
  test::write_json(tmp.path() / "2_Dense" / "config.json",
                   {{"in_features", 16}, {"out_features", 4}, {"bias", true},
                    {"activation_function", "torch.nn.modules.linear.Identity"}});
  msg = load_error(tmp.path());
  EXPECT_NE(msg.find("'linear.weight' is f32 [4, 12], expected float [4, 16]"), std::string::npos) << msg;
  EXPECT_NE(msg.find("2_Dense"), std::string::npos) << msg;
}

// Config values the new encoders cannot honour fail naming config.json and the field.
TEST(EmbedderErrors, ConfigValuesOfTheNewEncodersAreNamed) {
  struct Case {
    std::string arch;
    nlohmann::json change;
    std::string message;
  };
  const std::vector<Case> cases = {
      {"modernbert", {{"layer_types", {"full_attention", "chunked_attention", "sliding_attention"}}},
       "unknown layer type 'chunked_attention'"},
      {"modernbert", {{"hidden_activation", "swish2"}}, "'swish2' is not supported"},
      {"nomic_bert", {{"prenorm", true}}, "prenorm"},
      {"nomic_bert", {{"rotary_emb_fraction", 0.5}}, "rotary_emb_fraction"},
      {"nomic_bert", {{"rotary_emb_scale_base", 512}}, "rotary_emb_scale_base"},
      {"gemma3_text", {{"model_type", "qwen3"}}, "use_bidirectional_attention"},
  };
  for (const Case& c : cases) {
    TempDir tmp;
    make_folder(tmp.path(), c.arch, 31);
    nlohmann::json cfg = nlohmann::json::parse(std::ifstream(tmp.path() / "config.json"));
    cfg.update(c.change);
    test::write_json(tmp.path() / "config.json", cfg);
    const std::string msg = load_error(tmp.path());
    EXPECT_NE(msg.find(c.message), std::string::npos) << c.arch << ": " << msg;
    EXPECT_NE(msg.find("config.json"), std::string::npos) << c.arch << ": " << msg;
  }
}

TEST(EmbedderErrors, UnsupportedModulesAndArchitectures) {
  TempDir tmp;
  make_folder(tmp.path(), "bert", 21);
  test::write_json(tmp.path() / "modules.json",
                   nlohmann::json::array({{{"idx", 0}, {"path", ""}, {"type", "sentence_transformers.models.Transformer"}},
                                          {{"idx", 1}, {"path", ""}, {"type", "sentence_transformers.models.LSTM"}}}));
  EXPECT_NE(load_error(tmp.path()).find("module type 'sentence_transformers.models.LSTM' is not supported"),
            std::string::npos);
  test::write_json(tmp.path() / "modules.json", nlohmann::json::array());
  EXPECT_NE(load_error(tmp.path()).find("lists no modules"), std::string::npos);
  fs::remove(tmp.path() / "modules.json");
  test::write_json(tmp.path() / "config.json", test::tiny_bert_config({{"model_type", "t5"}}));
  EXPECT_NE(load_error(tmp.path()).find("model_type 't5' is not a supported embedder"), std::string::npos);
}

}  // namespace
}  // namespace lmx::models::embed
