// The streaming detokenizer: ids one at a time, only final text out, and the pieces
// concatenate to decode(all ids).
#include <gtest/gtest.h>

#include <random>

#include "lmx/base/error.h"
#include "lmx/tokenizer/tokenizer.h"
#include "lmx/tokenizer/unicode.h"
#include "tokenizer_sources.h"
#include "tokenizer_test_util.h"

namespace lmx::tokenizer {
namespace {

// Streams ids; checks each chunk is whole UTF-8 and the total equals decode().
void check_stream(const Tokenizer& tok,
                  const std::vector<int32_t>& ids,
                  bool skip_special,
                  const std::string& label) {
  auto stream = tok.streaming_detokenizer(skip_special);
  std::string out;
  for (int32_t id : ids) {
    std::string chunk = stream.add(id);
    ASSERT_TRUE(detail::is_valid_utf8(chunk)) << label;
    out += chunk;
  }
  out += stream.finish();
  EXPECT_EQ(out, tok.decode(ids, skip_special, false)) << label;
}

const char* const kStreamed[] = {"qwen3",    "llama3_1", "gemma3",     "llama2_spm", "mistral_v7",
                                 "t5_small", "minilm",   "botchan_ja", "phi3_mini",  "gpt2_vocab"};

TEST(StreamingDetokenizer, CorpusConcatenationEqualsDecode) {
  for (const char* name : kStreamed) {
    const auto* src = test::find_source(name);
    LMX_REQUIRE_PATH(src->path);
    Tokenizer tok = src->load();
    for (const auto& s : test::corpus().strings) {
      auto ids = tok.encode(s);
      check_stream(tok, ids, false, std::string(name) + " [" + s + "]");
      check_stream(tok, ids, true, std::string(name) + " skip [" + s + "]");
    }
  }
}

TEST(StreamingDetokenizer, RandomIdsConcatenationEqualsDecode) {
  // Random ids make invalid UTF-8 (stray byte tokens, cut characters) on purpose.
  std::mt19937 rng(20261125);
  for (const char* name : kStreamed) {
    const auto* src = test::find_source(name);
    LMX_REQUIRE_PATH(src->path);
    Tokenizer tok = src->load();
    std::uniform_int_distribution<int32_t> any(0, static_cast<int32_t>(tok.vocab_size()) - 1);
    for (int trial = 0; trial < 40; ++trial) {
      std::vector<int32_t> ids;
      size_t n = 1 + rng() % 40;
      for (size_t k = 0; k < n; ++k) ids.push_back(any(rng));
      check_stream(tok, ids, trial % 2 == 0,
                   std::string(name) + " random #" + std::to_string(trial));
    }
  }
}

TEST(StreamingDetokenizer, HoldsBackPartialCharacters) {
  const auto* src = test::find_source("qwen3");
  LMX_REQUIRE_PATH(src->path);
  Tokenizer tok = src->load();
  // U+2000B is 4 bytes that Qwen3 splits over three byte-level tokens.
  auto ids = tok.encode("a\U0002000Bb", false);
  ASSERT_EQ(ids.size(), 5u);
  ASSERT_GE(ids.size(), 3u);
  auto stream = tok.streaming_detokenizer();
  std::vector<std::string> chunks;
  for (int32_t id : ids) chunks.push_back(stream.add(id));
  chunks.push_back(stream.finish());
  std::string joined;
  for (const auto& c : chunks) {
    EXPECT_EQ(c.find("\xEF\xBF\xBD"), std::string::npos) << "emitted a replacement character";
    joined += c;
  }
  EXPECT_EQ(joined, "a\U0002000Bb");
  // Nothing comes out until the character is complete.
  EXPECT_EQ(chunks[0], "a");
  EXPECT_EQ(chunks[1], "");
  EXPECT_EQ(chunks[2], "");
  EXPECT_EQ(chunks[3], "\U0002000B");
  EXPECT_EQ(chunks[4] + chunks[5], "b");
}

TEST(StreamingDetokenizer, SentencePieceLeadingSpaceAndByteFallback) {
  const auto* src = test::find_source("llama2_spm");
  LMX_REQUIRE_PATH(src->path);
  Tokenizer tok = src->load();
  // "▁Hello" streams as "Hello" first (the decoder strips the dummy prefix once),
  // later words keep their space; 🦙 comes from four <0x..> byte tokens.
  auto ids = tok.encode("Hello world 🦙!", false);
  auto stream = tok.streaming_detokenizer();
  std::vector<std::string> chunks;
  for (int32_t id : ids) chunks.push_back(stream.add(id));
  chunks.push_back(stream.finish());
  EXPECT_EQ(chunks[0], "Hello");
  EXPECT_EQ(chunks[1], " world");
  std::string joined;
  for (const auto& c : chunks) joined += c;
  EXPECT_EQ(joined, "Hello world 🦙!");
  EXPECT_THROW(stream.add(-1), InvalidArgument);
}

}  // namespace
}  // namespace lmx::tokenizer
