// The UnicodeScripts pre-tokenizer against the behaviour of HF `tokenizers`
// (pre_tokenizers/unicode_scripts): hand cases derived from its source, and the
// fixture tools/fixtures/make_unicode_scripts_fixture.py records with it.
#include "lmx/tokenizer/unicode_scripts.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "lmx/tokenizer/pre_tokenizers.h"
#include "lmx/tokenizer/tokenizer.h"
#include "tokenizer_test_util.h"

namespace lmx::tokenizer {
namespace {

std::vector<std::string> splits(const std::string& text) {
  static const auto pre = detail::make_unicode_scripts_pre_tokenizer();
  std::vector<detail::Piece> pieces{{text, 0, -1}};
  pre->pre_tokenize(pieces);
  std::vector<std::string> out;
  for (auto& p : pieces) out.push_back(p.text);
  return out;
}

using Splits = std::vector<std::string>;

TEST(UnicodeScripts, ScriptTableIsUnicode9) {
  auto name = [](char32_t c) {
    return std::string(detail::unicode_script_name(detail::unicode_script(c)));
  };
  EXPECT_EQ(name(U'a'), "Latin");
  EXPECT_EQ(name(U' '), "Common");
  EXPECT_EQ(name(U'0'), "Common");
  EXPECT_EQ(name(U'\u0301'), "Inherited");
  EXPECT_EQ(name(U'\u0416'), "Cyrillic");
  EXPECT_EQ(name(U'\u3044'), "Hiragana");
  EXPECT_EQ(name(U'\u30B0'), "Katakana");
  EXPECT_EQ(name(U'\u30FC'), "Common");
  EXPECT_EQ(name(U'\uFFFD'), "Common");
  EXPECT_EQ(name(U'\U0001F600'), "Common");  // Unicode 6.1 emoji
  EXPECT_EQ(name(U'\U0001F999'), "Any");     // Unicode 11 (llama): unassigned in 9.0
  EXPECT_EQ(name(U'\u9FD5'), "Han");         // last ideograph of Unicode 9.0's block
  EXPECT_EQ(name(U'\u9FD6'), "Any");
  EXPECT_EQ(name(U'\U00018AF2'), "Tangut");
  // Script values that changed after 9.0 keep their 9.0 value.
  EXPECT_EQ(name(U'\u0589'), "Common");
  EXPECT_EQ(name(U'\u061C'), "Common");
  EXPECT_EQ(name(U'\u0953'), "Devanagari");
  EXPECT_EQ(name(U'\U0010FFFF'), "Any");
}

TEST(UnicodeScripts, FixedScripts) {
  using detail::unicode_scripts_class;
  EXPECT_EQ(unicode_scripts_class(U' '), detail::kScriptAny);
  EXPECT_EQ(unicode_scripts_class(U'\u3044'), detail::kScriptHan);  // い
  EXPECT_EQ(unicode_scripts_class(U'\u30B0'), detail::kScriptHan);  // グ
  EXPECT_EQ(unicode_scripts_class(U'\u30FC'), detail::kScriptHan);  // ー
  EXPECT_EQ(unicode_scripts_class(U'\uFF76'), detail::kScriptHan);  // halfwidth カ
  EXPECT_EQ(unicode_scripts_class(U'\uFF70'), detail::kScriptCommon);
  EXPECT_EQ(unicode_scripts_class(U'\u30FB'), detail::kScriptCommon);  // ・
  EXPECT_EQ(unicode_scripts_class(U'\u3000'), detail::kScriptCommon);  // only U+0020 is Any
  EXPECT_EQ(unicode_scripts_class(U'\t'), detail::kScriptCommon);
}

TEST(UnicodeScripts, SplitsWhereTheScriptChanges) {
  EXPECT_EQ(splits("どこで生れ。Yes"), (Splits{"どこで生れ", "。", "Yes"}));
  EXPECT_EQ(splits("Apples are りんご 林檎"), (Splits{"Apples are ", "りんご 林檎"}));
  EXPECT_EQ(splits("カタカナーひらがな漢字"), (Splits{"カタカナーひらがな漢字"}));
  // Common is a script like any other: punctuation and digits split from letters.
  EXPECT_EQ(splits("Hello, world!"), (Splits{"Hello", ", ", "world", "!"}));
  EXPECT_EQ(splits("abc123 def"), (Splits{"abc", "123 ", "def"}));
  EXPECT_EQ(splits("Привет мир hello"), (Splits{"Привет мир ", "hello"}));
  EXPECT_EQ(splits("東京\u3000大阪"), (Splits{"東京", "\u3000", "大阪"}));
  EXPECT_EQ(splits("tab\tx"), (Splits{"tab", "\t", "x"}));
  // So is Inherited: a decomposed accent leaves its letter.
  EXPECT_EQ(splits("e\u0301t"), (Splits{"e", "\u0301", "t"}));
  EXPECT_EQ(splits("a😀b"), (Splits{"a", "😀", "b"}));
  EXPECT_EQ(splits("ｶｰ"), (Splits{"ｶ", "ｰ"}));
}

TEST(UnicodeScripts, AnyJoinsAndLeadingAnyIsDropped) {
  // The first piece starts at the first character that is not Any.
  EXPECT_EQ(splits("  Hello"), (Splits{"Hello"}));
  EXPECT_EQ(splits("🦙 llama"), (Splits{"llama"}));
  EXPECT_EQ(splits("   "), Splits{});
  EXPECT_EQ(splits(""), Splits{});
  // Elsewhere Any characters stay in the piece they fall in.
  EXPECT_EQ(splits("llama 🦙"), (Splits{"llama 🦙"}));
  EXPECT_EQ(splits("a 🦙 b"), (Splits{"a 🦙 b"}));
  EXPECT_EQ(splits("a 🦙 日"), (Splits{"a 🦙 ", "日"}));
  EXPECT_EQ(splits("trailing   "), (Splits{"trailing   "}));
}

TEST(UnicodeScripts, OffsetsAndAddedTokens) {
  auto pre = detail::make_unicode_scripts_pre_tokenizer();
  std::vector<detail::Piece> pieces{{"ab", 0, -1}, {"<s>", 2, 7}, {" x日", 5, -1}};
  pre->pre_tokenize(pieces);
  ASSERT_EQ(pieces.size(), 4u);
  EXPECT_EQ(pieces[0].text, "ab");
  EXPECT_EQ(pieces[1].added_id, 7);
  EXPECT_EQ(pieces[2].text, "x");
  EXPECT_EQ(pieces[2].offset, 6u);
  EXPECT_EQ(pieces[3].text, "日");
  EXPECT_EQ(pieces[3].offset, 7u);
}

TEST(UnicodeScripts, LoadsFromTokenizerJson) {
  const char* json = R"({
    "normalizer": null, "post_processor": null, "decoder": null, "added_tokens": [],
    "pre_tokenizer": {"type": "UnicodeScripts"},
    "model": {"type": "WordLevel", "unk_token": "[UNK]",
              "vocab": {"Hello": 0, ", ": 1, "world": 2, "[UNK]": 3}}})";
  Tokenizer tok = Tokenizer::from_json_text(json);
  EXPECT_EQ(tok.encode("Hello, world", false), (std::vector<int32_t>{0, 1, 2}));
  EXPECT_EQ(tok.encode("  Hello", false), (std::vector<int32_t>{0}));
  // Inside a Sequence, as the fixture tokenizer has it.
  auto file = test::test_data("unicode_scripts/tokenizer.json");
  LMX_REQUIRE_PATH(file);
  Tokenizer seq = Tokenizer::from_tokenizer_json(file);
  std::string text = "Hello, world! 日本語のテキスト";
  EXPECT_EQ(seq.decode(seq.encode(text, false)), text);
}

TEST(UnicodeScripts, MatchesReferenceFixture) {
  auto expected = test::test_data("expected/unicode_scripts.json");
  if (!std::filesystem::exists(expected)) {
    GTEST_SKIP() << "no fixture " << expected.string()
                 << " yet: run tools/fixtures/make_unicode_scripts_fixture.py where HF "
                    "`tokenizers` is installed (the GPU machine)";
  }
  auto file = test::test_data("unicode_scripts/tokenizer.json");
  LMX_REQUIRE_PATH(file);
  Tokenizer tok = Tokenizer::from_tokenizer_json(file);
  auto doc = nlohmann::json::parse(test::read_text(expected));
  size_t total = 0, ok = 0;
  for (const auto& c : doc.at("cases")) {
    std::string input = c.at("input").get<std::string>();
    SCOPED_TRACE("input: [" + input + "]");
    auto want_splits = c.at("splits").get<Splits>();
    auto want_ids = c.at("ids").get<std::vector<int32_t>>();
    auto got_splits = splits(input);
    auto got_ids = tok.encode(input, false);
    auto decoded = tok.decode(got_ids, false, false);
    EXPECT_EQ(got_splits, want_splits);
    EXPECT_EQ(test::join_ids(got_ids), test::join_ids(want_ids));
    EXPECT_EQ(decoded, c.at("decoded").get<std::string>());
    ++total;
    ok += got_splits == want_splits && got_ids == want_ids &&
          decoded == c.at("decoded").get<std::string>();
  }
  EXPECT_GT(total, 40u);
  std::printf("[fixture] unicode_scripts %zu/%zu cases match (%s)\n", ok, total,
              doc.value("tool", std::string("?")).c_str());
}

}  // namespace
}  // namespace lmx::tokenizer
