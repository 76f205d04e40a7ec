// lmx embed / lmx rerank as a user runs them, on random-weight folders made in a temporary
// directory: the written vectors equal the library's (bit for bit through %.9g), and bad
// inputs end with one clear line and a non-zero exit.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "../models/embed/embed_test_util.h"
#include "cli_run.h"
#include "lmx/io/safetensors.h"
#include "lmx/models/config_reader.h"
#include "lmx/models/embed/cross_encoder.h"
#include "lmx/models/embed/embedder.h"
#include "lmx/models/embed/encoder.h"

namespace lmx {
namespace {

namespace fs = std::filesystem;
namespace embed = models::embed;

const fs::path kMiniLm = "../shared/data/tokenizers/all-MiniLM-L6-v2-tokenizer-and-config";

using Result = testing::CliResult;

// stdout and stderr together.
Result run(const std::string& args) { return testing::lmx_run(args, "", true); }

std::vector<std::vector<float>> parse_jsonl(const std::string& text) {
  std::vector<std::vector<float>> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("{\"index\"", 0) != 0) continue;
    auto j = nlohmann::json::parse(line);
    EXPECT_EQ(j["index"].get<size_t>(), out.size());
    out.push_back(j["embedding"].get<std::vector<float>>());
  }
  return out;
}

class EmbedCli : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fs::exists(kMiniLm)) GTEST_SKIP() << "shared data missing: " << kMiniLm;
    dir_ = tmp_.path() / "model";
    test::write_random_encoder(dir_, test::tiny_bert_config({{"vocab_size", 30522}}), 41);
    for (const char* f : {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"}) {
      fs::copy_file(kMiniLm / f, dir_ / f);
    }
    test::write_st_modules(dir_, 16, {"mean_tokens"}, {}, true, 9);
    test::write_json(dir_ / "sentence_bert_config.json", {{"max_seq_length", 12}});
    test::write_json(dir_ / "config_sentence_transformers.json", {{"prompts", {{"query", "query: "}}}});
  }
  test::TempDir tmp_;
  fs::path dir_;
};

TEST_F(EmbedCli, TextsAsJsonLinesEqualTheLibrary) {
  const std::vector<std::string> texts = {"hello there", "a second, longer text that goes well past twelve tokens for sure"};
  Result r = run("embed --model " + dir_.string() + " --text 'hello there' --text '" + texts[1] + "' --prompt-name query");
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("warning: 1 of 2 inputs were longer than 12 tokens"), std::string::npos) << r.out;
  const auto got = parse_jsonl(r.out);
  embed::EmbedOptions o;
  o.prompt_name = "query";
  const Tensor want = embed::Embedder::load(dir_).embed(texts, o).values;
  ASSERT_EQ(got.size(), 2u);
  for (int64_t i = 0; i < 2; ++i) EXPECT_EQ(got[static_cast<size_t>(i)], want.select(0, i).contiguous().to_float_vector());
}

TEST_F(EmbedCli, InputFileToSafetensorsWithDimensions) {
  const fs::path in = tmp_.path() / "in.jsonl", out = tmp_.path() / "e.safetensors";
  std::ofstream(in) << "\"first\"\n{\"text\": \"\"}\n{\"text\": \"third one\"}\n";
  Result r = run("embed --model " + dir_.string() + " --input " + in.string() + " --dimensions 8 --out " + out.string());
  ASSERT_EQ(r.status, 0) << r.out;
  auto f = io::SafetensorsFile::open(out);
  const auto& info = f.at("embeddings");
  ASSERT_EQ(info.shape, (std::vector<int64_t>{3, 8}));
  embed::EmbedOptions o;
  o.dimensions = 8;
  const std::vector<std::string> texts = {"first", "", "third one"};
  const auto want = embed::Embedder::load(dir_).embed(texts, o).values.to_float_vector();
  const float* p = reinterpret_cast<const float*>(info.data);
  EXPECT_EQ(std::vector<float>(p, p + 24), want);
}

TEST_F(EmbedCli, TokenListsWithPoolingOverride) {
  const fs::path out = tmp_.path() / "t.safetensors";
  Result r = run("embed --model " + dir_.string() + " --tokens '101,7592,102;101,102' --pooling cls --no-normalize --out " +
                 out.string());
  ASSERT_EQ(r.status, 0) << r.out;
  embed::EmbedderOptions lo = test::ids_only({embed::PoolingMode::cls});
  embed::EmbedOptions o;
  o.normalize = false;
  const std::vector<std::vector<int32_t>> ids = {{101, 7592, 102}, {101, 102}};
  const auto want = embed::Embedder::load(dir_, lo).embed_tokens(ids, o).values.to_float_vector();
  auto f = io::SafetensorsFile::open(out);
  const float* p = reinterpret_cast<const float*>(f.at("embeddings").data);
  EXPECT_EQ(std::vector<float>(p, p + 32), want);
}

TEST_F(EmbedCli, BadInputsGiveOneClearLine) {
  const fs::path empty = tmp_.path() / "empty.txt", blank = tmp_.path() / "blank.txt";
  std::ofstream(empty) << "";
  std::ofstream(blank) << "one\n\nthree\n";
  struct Case {
    std::string args, message;
  };
  const std::vector<Case> cases = {
      {"--input " + empty.string(), "holds no inputs"},
      {"--input " + blank.string(), "line 2 is empty"},
      {"", "give exactly one of --text, --input, --tokens"},
      {"--text a --tokens 1,2", "give exactly one of --text, --input, --tokens"},
      {"--tokens '1,2;'", "--tokens: input 1 has no ids"},
      {"--tokens 1,99999", "outside the vocabulary"},
      {"--text a --prompt-name nope", "prompt 'nope' is not in config_sentence_transformers.json"},
      {"--text a --dimensions 99", "dimensions 99 is outside [1, 16]"},
      {"--text a --pooling median", "pooling 'median' is not one of"},
  };
  for (const Case& c : cases) {
    Result r = run("embed --model " + dir_.string() + " " + c.args);
    EXPECT_NE(r.status, 0) << c.args;
    EXPECT_NE(r.out.find(c.message), std::string::npos) << c.args << "\n" << r.out;
    EXPECT_EQ(r.out.find("internal error"), std::string::npos) << r.out;
  }
}

// Broken folders through the CLI: one line naming the file, no crash.
TEST_F(EmbedCli, BrokenFoldersGiveOneClearLine) {
  const fs::path missing = tmp_.path() / "missing", dense = tmp_.path() / "dense";
  for (const fs::path& d : {missing, dense}) fs::copy(dir_, d, fs::copy_options::recursive);
  fs::remove_all(missing / "1_Pooling");
  test::write_st_modules(dense, 16, {"mean_tokens"}, {{{"in", 16}, {"out", 4}, {"bias", true},
                                                       {"activation", "torch.nn.modules.linear.Identity"}}},
                         true, 3);
  test::write_json(dense / "2_Dense" / "config.json", {{"in_features", 16}, {"out_features", 8}, {"bias", true}});
  const std::vector<std::pair<fs::path, std::string>> cases = {
      {missing, "points at '1_Pooling', which is not a folder"},
      {dense, "'linear.weight' is f32 [4, 16], expected float [8, 16]"}};
  for (const auto& [dir, message] : cases) {
    for (const std::string& cmd : std::vector<std::string>{"embed --text hello --model ",
                                                          "convert -o " + (tmp_.path() / "o").string() + " -m "}) {
      Result r = run(cmd + dir.string());
      EXPECT_NE(r.status, 0) << cmd;
      EXPECT_NE(r.out.find(message), std::string::npos) << cmd << "\n" << r.out;
      EXPECT_EQ(r.out.find("internal error"), std::string::npos) << r.out;
    }
  }
}

// lmx convert -q on a sentence-transformers folder: the encoder's Linear and Embedding
// layers quantized (here all but the 48-wide ones at group size 32), config.json records
// it, the Pooling / Dense / Normalize modules and the tokenizer come along, and the result
// embeds close to the source. Exactness against an independent reference is
// embed_parity_test's QuantizedEmbedConvert.
TEST_F(EmbedCli, ConvertQuantizesAnEmbedderAndKeepsItsModules) {
  const fs::path src = tmp_.path() / "wide", q = tmp_.path() / "q8";
  test::write_random_encoder(src, test::tiny_bert_config({{"hidden_size", 32}, {"intermediate_size", 48}, {"vocab_size", 30522}}), 5, true);
  test::write_st_modules(src, 32, {"mean_tokens"},
                         {{{"in", 32}, {"out", 8}, {"bias", true}, {"activation", "torch.nn.modules.activation.Tanh"}}},
                         true, 6);
  fs::copy_file(dir_ / "tokenizer.json", src / "tokenizer.json");
  Result r = run("convert -m " + src.string() + " -o " + q.string() + " -q --q-bits 8 --q-group-size 32");
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("left 2 unquantized"), std::string::npos) << r.out;  // the two 48-wide down projections
  for (const char* f : {"modules.json", "1_Pooling/config.json", "2_Dense/model.safetensors", "tokenizer.json"}) {
    EXPECT_TRUE(fs::exists(q / f)) << f;
  }
  const auto cfg = nlohmann::json::parse(std::ifstream(q / "config.json"));
  EXPECT_EQ(cfg["quantization"]["bits"], 8);
  EXPECT_EQ(cfg["quantization"]["group_size"], 32);
  auto weights = io::SafetensorsFile::open(q / "model.safetensors");
  EXPECT_EQ(weights.at("embeddings.word_embeddings.weight").dtype, Dtype::u32);
  EXPECT_EQ(weights.find("pooler.dense.weight"), nullptr);  // an embedder does not use BERT's pooler
  const std::vector<std::string> texts = {"hello there", "quantized embedders"};
  const Tensor a = embed::Embedder::load(src).embed(texts).values, b = embed::Embedder::load(q).embed(texts).values;
  ASSERT_EQ(b.shape(), (std::vector<int64_t>{2, 8}));
  const auto av = a.to_float_vector(), bv = b.to_float_vector();
  for (size_t row = 0; row < 2; ++row) {
    double dot = 0;
    for (size_t i = 0; i < 8; ++i) dot += static_cast<double>(av[row * 8 + i]) * bv[row * 8 + i];
    EXPECT_GT(dot, 0.999) << row;  // unit rows: the cosine
  }
}

TEST_F(EmbedCli, ConvertRefusesCrossEncodersAndRecipes) {
  const fs::path ce = tmp_.path() / "ce";
  test::write_random_encoder(ce, test::tiny_bert_config({{"architectures", {"BertForSequenceClassification"}}}), 7);
  Result r = run("convert -m " + ce.string() + " -o " + (tmp_.path() / "x").string() + " -q");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.out.find("cross-encoder) cannot be converted yet"), std::string::npos) << r.out;
  r = run("convert -m " + dir_.string() + " -o " + (tmp_.path() / "y").string() + " -q --quant-predicate mixed_3_6");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.out.find("the recipes are for LLMs, not embedders"), std::string::npos) << r.out;
}

TEST_F(EmbedCli, RerankPrintsScoresBestFirst) {
  const fs::path ce = tmp_.path() / "ce";
  nlohmann::json cfg = test::tiny_bert_config({{"vocab_size", 30522}, {"num_labels", 1}});
  test::write_json(ce / "config.json", cfg);
  auto enc = embed::create_encoder(models::ConfigReader(cfg, "test"), true);
  std::vector<std::pair<std::string, std::vector<int64_t>>> tensors;
  for (const auto& p : enc->parameters()) tensors.push_back({"bert." + p.name, p.shape});
  tensors.push_back({"classifier.weight", {1, 16}});
  tensors.push_back({"classifier.bias", {1}});
  test::write_random_tensors(ce / "model.safetensors", tensors, 43);
  for (const char* f : {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"}) fs::copy_file(kMiniLm / f, ce / f);
  const fs::path docs = tmp_.path() / "docs.txt";
  std::ofstream(docs) << "paris is in france\nspiders have eight legs\nthe sky is blue\n";
  Result r = run("rerank --model " + ce.string() + " --query 'where is paris' --documents " + docs.string());
  ASSERT_EQ(r.status, 0) << r.out;
  const std::vector<std::string> d = {"paris is in france", "spiders have eight legs", "the sky is blue"};
  const auto scores = embed::CrossEncoder::load(ce).score("where is paris", d).scores;
  std::istringstream in(r.out);
  std::string line;
  float previous = 1e30f;
  int lines = 0;
  while (std::getline(in, line)) {
    int rank = 0;
    float score = 0;
    size_t index = 0;
    ASSERT_EQ(std::sscanf(line.c_str(), "%d\t%f\t%zu", &rank, &score, &index), 3) << line;
    EXPECT_EQ(rank, ++lines);
    EXPECT_NEAR(score, scores[index], 1e-6);
    EXPECT_LE(score, previous);
    EXPECT_NE(line.find(d[index]), std::string::npos);
    previous = score;
  }
  EXPECT_EQ(lines, 3);
  Result bad = run("rerank --model " + ce.string() + " --query q --instruction 'be brief' --documents " + docs.string());
  EXPECT_NE(bad.status, 0);
  EXPECT_NE(bad.out.find("--instruction: only yes/no rerankers"), std::string::npos) << bad.out;
}

// Qwen3-Reranker's form on its parity fixture: the printed scores are HF's (rel err 1e-4
// of the probabilities, the print keeps 6 decimals).
TEST_F(EmbedCli, RerankYesNoWithInstruction) {
  const fs::path dir = fs::path(LMX_SOURCE_DIR) / "tests/data/embed/qwen3_reranker";
  if (!fs::exists(dir / "reference.safetensors")) GTEST_SKIP() << "fixture not generated yet: " << dir;
  const nlohmann::json meta = nlohmann::json::parse(std::ifstream(dir / "reference.json"));
  const auto ref = io::SafetensorsFile::open(dir / "reference.safetensors");
  const io::TensorInfo& info = ref.at("custom.scores");
  const float* want = reinterpret_cast<const float*>(info.data);
  const fs::path docs = tmp_.path() / "docs.jsonl";
  {
    std::ofstream out(docs);
    for (const auto& d : meta["documents"]) out << d.dump() << "\n";
  }
  Result r = run("rerank --model " + dir.string() + " --query '" + meta["query"].get<std::string>() +
                 "' --instruction '" + meta["instructions"]["custom"].get<std::string>() + "' --documents " +
                 docs.string());
  ASSERT_EQ(r.status, 0) << r.out;
  std::istringstream in(r.out);
  std::string line;
  int lines = 0;
  while (std::getline(in, line)) {
    int rank = 0;
    float score = 0;
    size_t index = 0;
    ASSERT_EQ(std::sscanf(line.c_str(), "%d\t%f\t%zu", &rank, &score, &index), 3) << line;
    ASSERT_LT(index, meta["documents"].size());
    EXPECT_NEAR(score, want[index], 2e-6) << line;
    ++lines;
  }
  EXPECT_EQ(lines, 3);
}

}  // namespace
}  // namespace lmx
