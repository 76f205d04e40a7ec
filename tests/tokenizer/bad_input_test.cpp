// Bad input never crashes: clear errors naming the file and field, or a documented
// recovery (invalid UTF-8 -> U+FFFD), and BPE stays near-linear on degenerate text.
#include <gtest/gtest.h>

#include <fstream>

#include "lmx/base/error.h"
#include "lmx/tokenizer/tokenizer.h"
#include "tokenizer_sources.h"
#include "tokenizer_test_util.h"

namespace lmx::tokenizer {
namespace {

// A small byte-fallback BPE tokenizer.json; `extra` is spliced into the model.
std::string tiny_json(const std::string& vocab_extra = "",
                      const std::string& merges = R"(["a b"])",
                      const std::string& post = "null",
                      const std::string& added = "[]") {
  return R"({"version": "1.0", "added_tokens": )" + added + R"(,
    "normalizer": null, "pre_tokenizer": null, "post_processor": )" +
         post + R"(,
    "decoder": {"type": "Sequence", "decoders": [{"type": "ByteFallback"}, {"type": "Fuse"}]},
    "model": {"type": "BPE", "unk_token": "<unk>", "byte_fallback": true, "fuse_unk": true,
      "vocab": {"<unk>": 0, "<s>": 1, "a": 2, "b": 3, "ab": 4, "<0x41>": 5, "<0xE6>": 6,
                "<0xAD>": 7, "<0xA3>": 8)" +
         vocab_extra + R"(},
      "merges": )" +
         merges + "}}";
}

template <typename Fn>
std::string error_of(Fn&& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(BadInput, MalformedJson) {
  std::string json = tiny_json();
  for (size_t cut : {size_t{0}, size_t{1}, json.size() / 3, json.size() / 2, json.size() - 1}) {
    auto msg = error_of([&] { Tokenizer::from_json_text(json.substr(0, cut), "", "cut.json"); });
    EXPECT_NE(msg.find("cut.json"), std::string::npos) << msg;
  }
  EXPECT_THROW(Tokenizer::from_json_text("[1, 2]", "", "x.json"), FormatError);
  // A number whose exponent overflows a double is nlohmann's out_of_range, not a parse_error
  // (fuzzing found it escaping as a foreign exception; tests/fuzz/regressions/tokenizer_json).
  for (const char* overflow : {R"({"v": 0.1223e000779721eo}x)", R"({"model": {"type": "BPE"}, "v": 1e999999})"}) {
    const std::string m = error_of([&] { Tokenizer::from_json_text(overflow, "", "overflow.json"); });
    EXPECT_NE(m.find("overflow.json"), std::string::npos) << m;
    // The same through tokenizer_config.json's reader (error_of lets a foreign exception through).
    EXPECT_NE(error_of([&] { Tokenizer::from_json_text(tiny_json(), overflow, "t"); }), "(no error)");
  }
  EXPECT_THROW(Tokenizer::from_json_text("{\"model\": 3}", "", "x.json"), FormatError);
  auto msg = error_of([&] { Tokenizer::from_json_text(tiny_json(), "{\"bos_token\": [1]}", "t"); });
  EXPECT_NE(msg.find("bos_token"), std::string::npos) << msg;
  msg = error_of([] { Tokenizer::from_folder("/nonexistent/folder"); });
  EXPECT_NE(msg.find("/nonexistent/folder"), std::string::npos) << msg;
}

// Issue 22: nesting deep enough to overflow the stack (a SIGSEGV before) is a
// FormatError naming the file; nesting real files use still loads.
std::string nested_sequence(const std::string& list, int depth, const std::string& leaf) {
  std::string open = R"({"type": "Sequence", ")" + list + R"(": [)";
  std::string s;
  for (int i = 0; i < depth; ++i) s += open;
  s += leaf;
  for (int i = 0; i < depth; ++i) s += "]}";
  return s;
}

TEST(BadInput, DeepNestingIsAnErrorNotACrash) {
  std::string deep_array = std::string(100000, '[') + std::string(100000, ']');
  std::string base = tiny_json();
  std::vector<std::string> docs = {
      // A deep array under an unknown top-level key, and inside the model object.
      "{\"junk\": " + deep_array + ", " + base.substr(1),
      base.substr(0, base.size() - 2) + ", \"extra\": " + deep_array + "}}",
  };
  std::string doc = base;
  std::string dec = R"("decoder": {"type": "Sequence", "decoders": [{"type": "ByteFallback"}, {"type": "Fuse"}]})";
  ASSERT_NE(doc.find(dec), std::string::npos);
  docs.push_back(std::string(base).replace(
      base.find(dec), dec.size(),
      "\"decoder\": " + nested_sequence("decoders", 30000, R"({"type": "Fuse"})")));
  docs.push_back(std::string(base).replace(
      base.find("\"normalizer\": null"), 18,
      "\"normalizer\": " + nested_sequence("normalizers", 30000, R"({"type": "NFC"})")));
  docs.push_back(std::string(base).replace(
      base.find("\"pre_tokenizer\": null"), 21,
      "\"pre_tokenizer\": " +
          nested_sequence("pretokenizers", 30000, R"({"type": "Whitespace"})")));
  for (const auto& d : docs) {
    auto msg = error_of([&] { Tokenizer::from_json_text(d, "", "deep/tokenizer.json"); });
    EXPECT_NE(msg.find("deep/tokenizer.json"), std::string::npos) << msg.substr(0, 200);
    EXPECT_NE(msg.find("nesting deeper than 128"), std::string::npos) << msg.substr(0, 200);
  }
  // Ten nested Sequence decoders (about 20 levels) are fine and still decode.
  std::string ok = std::string(base).replace(
      base.find(dec), dec.size(),
      "\"decoder\": " + nested_sequence("decoders", 10, R"({"type": "ByteFallback"})"));
  auto tok = Tokenizer::from_json_text(ok, "", "ok.json");
  const std::vector<int32_t> ids = {5};
  EXPECT_EQ(tok.decode(ids), "A");
}

TEST(BadInput, WrongFieldTypesNameTheField) {
  auto msg = error_of([] {
    Tokenizer::from_json_text(R"({"model": {"type": "BPE", "vocab": {"a": "x"}, "merges": []}})",
                              "", "f.json");
  });
  EXPECT_NE(msg.find("f.json"), std::string::npos) << msg;
  msg = error_of([] {
    Tokenizer::from_json_text(R"({"model": {"type": "Martian", "vocab": {}}})", "", "f.json");
  });
  EXPECT_NE(msg.find("model.type"), std::string::npos) << msg;
  msg = error_of([] {
    Tokenizer::from_json_text(
        tiny_json().replace(
            tiny_json().find("\"pre_tokenizer\": null"), 21,
            R"("pre_tokenizer": {"type": "Split", "pattern": {"Regex": "(unclosed"}})"),
        "", "f.json");
  });
  EXPECT_NE(msg.find("pre_tokenizer.pattern.Regex"), std::string::npos) << msg;
}

TEST(BadInput, MergesNamingUnknownTokens) {
  auto msg =
      error_of([] { Tokenizer::from_json_text(tiny_json("", R"(["a zzz"])"), "", "m.json"); });
  EXPECT_NE(msg.find("m.json"), std::string::npos) << msg;
  EXPECT_NE(msg.find("model.merges[0]"), std::string::npos) << msg;
  EXPECT_NE(msg.find("zzz"), std::string::npos) << msg;
  msg =
      error_of([] { Tokenizer::from_json_text(tiny_json("", R"(["a b", "b a"])"), "", "m.json"); });
  EXPECT_NE(msg.find("model.merges[1]"), std::string::npos) << msg;  // "ba" is not a token
  msg = error_of([] { Tokenizer::from_json_text(tiny_json("", R"(["ab"])"), "", "m.json"); });
  EXPECT_NE(msg.find("model.merges[0]"), std::string::npos) << msg;
}

TEST(BadInput, ByteTokensThatAreNotBytes) {
  // "<0xZZ>" and "<0x-1>" are ordinary tokens: never bytes, decoded as their text.
  Tokenizer tok =
      Tokenizer::from_json_text(tiny_json(R"(, "<0xZZ>": 9, "<0x-1>": 10)"), "", "z.json");
  std::vector<int32_t> ids = {9, 5, 10, 2};
  EXPECT_EQ(tok.decode(ids), "<0xZZ>A<0x-1>a");
  // Byte fallback for characters outside the vocab; an incomplete sequence of byte
  // tokens decodes to one U+FFFD per byte.
  EXPECT_EQ(tok.encode("A", false), (std::vector<int32_t>{5}));
  std::vector<int32_t> partial = {6, 7};
  EXPECT_EQ(tok.decode(partial), "\xEF\xBF\xBD\xEF\xBF\xBD");
  std::vector<int32_t> whole = {6, 7, 8};
  EXPECT_EQ(tok.decode(whole), "\xE6\xAD\xA3");
  EXPECT_EQ(tok.encode("ab", false), (std::vector<int32_t>{4}));
  EXPECT_EQ(tok.encode("xa", false), (std::vector<int32_t>{0, 2}));  // x: no byte token -> unk
}

TEST(BadInput, SpecialIdsBeyondTheVocab) {
  std::string post =
      R"({"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
    {"Sequence": {"id": "A", "type_id": 0}}], "pair": [], "special_tokens": {"<s>": {"id": "<s>", "ids": [99999], "tokens": ["<s>"]}}})";
  auto msg =
      error_of([&] { Tokenizer::from_json_text(tiny_json("", R"(["a b"])", post), "", "p.json"); });
  EXPECT_NE(msg.find("post_processor.special_tokens.<s>"), std::string::npos) << msg;
  EXPECT_NE(msg.find("99999"), std::string::npos) << msg;
  msg = error_of([] {
    Tokenizer::from_json_text(
        tiny_json("", R"(["a b"])", "null",
                  R"([{"id": 4294967296, "content": "<x>", "special": true}])"),
        "", "p.json");
  });
  EXPECT_NE(msg.find("added_tokens[0].id"), std::string::npos) << msg;
  msg =
      error_of([] { Tokenizer::from_json_text(tiny_json(R"(, "big": 16777216)"), "", "p.json"); });
  EXPECT_NE(msg.find("out of range"), std::string::npos) << msg;
  // Added tokens past the model vocab are fine (Qwen3 has them); decode checks range.
  Tokenizer tok = Tokenizer::from_json_text(
      tiny_json("", R"(["a b"])", "null", R"([{"id": 20, "content": "<x>", "special": true}])"), "",
      "p.json");
  EXPECT_EQ(tok.vocab_size(), 21u);
  EXPECT_EQ(tok.encode("a<x>b", false), (std::vector<int32_t>{2, 20, 3}));
  std::vector<int32_t> bad = {2, 21};
  msg = error_of([&] { tok.decode(bad); });
  EXPECT_NE(msg.find("21"), std::string::npos) << msg;
  std::vector<int32_t> negative = {-1};
  EXPECT_THROW(tok.decode(negative), InvalidArgument);
  std::vector<int32_t> hole = {15};  // inside the range, but no token: decodes to nothing
  EXPECT_EQ(tok.decode(hole), "");
}

TEST(BadInput, InvalidUtf8IsReplacedOrRejected) {
  const auto* src = test::find_source("qwen3");
  LMX_REQUIRE_PATH(src->path);
  Tokenizer tok = src->load();
  const std::string partial = "\xE6\xAD";  // the first two bytes of a three-byte character
  EXPECT_EQ(tok.encode(partial), tok.encode("\xEF\xBF\xBD"));
  EXPECT_EQ(tok.encode("ok" + partial + "!"), tok.encode("ok\xEF\xBF\xBD!"));
  // Each maximal invalid subpart is one U+FFFD, as Python's errors="replace".
  EXPECT_EQ(tok.encode("\xC0\xAF"), tok.encode("\xEF\xBF\xBD\xEF\xBF\xBD"));
  EXPECT_EQ(tok.encode("\xF0\x90\x80"), tok.encode("\xEF\xBF\xBD"));
  EXPECT_EQ(tok.encode("\xED\xA0\x80"), tok.encode("\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"));
  auto msg = error_of([&] { tok.encode_strict("ok" + partial + "!"); });
  EXPECT_NE(msg.find("UTF-8"), std::string::npos) << msg;
  EXPECT_NE(msg.find("byte 2"), std::string::npos) << msg;
  EXPECT_NO_THROW(tok.encode_strict("fine \xE6\xAD\xA3"));
}

// GGUF metadata as little-endian bytes: the header, then key/value records.
std::string le(uint64_t v, int bytes) {
  std::string out;
  for (int i = 0; i < bytes; ++i) out += static_cast<char>((v >> (8 * i)) & 0xff);
  return out;
}
std::string gguf_str(const std::string& s) { return le(s.size(), 8) + s; }
std::string gguf_header(uint64_t kv_count) { return "GGUF" + le(3, 4) + le(0, 8) + le(kv_count, 8); }

// The GGUF cases of ../shared/reference/user-needs.md that a metadata-only reader meets:
// each is a FormatError naming the file, never a crash or a huge allocation.
TEST(BadInput, MalformedGgufMetadata) {
  auto dir = std::filesystem::temp_directory_path() / "lmx_tokenizer_bad_gguf";
  std::filesystem::create_directories(dir);
  const uint64_t huge = uint64_t{1} << 63;
  const std::string tokens_key = gguf_str("tokenizer.ggml.tokens");
  // Arrays of arrays nested 100000 deep (12 bytes a level): the skipping of an unknown
  // key recursed once per level and overflowed the stack (SIGSEGV) before the fix.
  std::string nested = gguf_header(1) + gguf_str("general.deep") + le(9, 4);
  for (int i = 0; i < 100000; ++i) nested += le(9, 4) + le(1, 8);
  nested += le(4, 4) + le(0, 8);
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"GGUF", "bad magic"},
      {gguf_header(0), "no tokenizer.ggml.tokens"},
      {gguf_header(huge), "implausible metadata count"},
      {gguf_header(1) + le(huge, 8) + "k", "string length"},
      {gguf_header(1) + tokens_key + le(9, 4) + le(8, 4) + le(huge, 8), "runs past the end"},
      {gguf_header(1) + tokens_key + le(9, 4) + le(8, 4) + le(1, 8) + le(huge, 8), "string length"},
      {gguf_header(1) + gguf_str("general.x") + le(99, 4) + le(0, 8), "unknown metadata type 99"},
      {nested, "nested"},
  };
  int i = 0;
  for (const auto& [bytes, expect] : cases) {
    const auto path = dir / ("bad" + std::to_string(i++) + ".gguf");
    std::ofstream(path, std::ios::binary) << bytes;
    SCOPED_TRACE(expect);
    try {
      (void)Tokenizer::from_gguf(path);
      ADD_FAILURE() << "loaded";
    } catch (const FormatError& e) {
      EXPECT_NE(std::string(e.what()).find(path.filename().string()), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(expect), std::string::npos) << e.what();
    }
  }
  std::filesystem::remove_all(dir);
}

TEST(BadInput, MalformedSentencePieceAndTiktokenFiles) {
  auto dir = std::filesystem::temp_directory_path() / "lmx_tokenizer_bad_input";
  std::filesystem::create_directories(dir);
  auto write = [&](const std::string& name, const std::string& data) {
    auto p = dir / name;
    std::ofstream(p, std::ios::binary) << data;
    return p;
  };
  auto msg = error_of([&] { Tokenizer::from_sentencepiece(write("trunc.model", "\x0a\xff\x01")); });
  EXPECT_NE(msg.find("trunc.model"), std::string::npos) << msg;
  msg = error_of([&] { Tokenizer::from_sentencepiece(write("empty.model", "")); });
  EXPECT_NE(msg.find("no pieces"), std::string::npos) << msg;
  msg = error_of([&] { Tokenizer::from_tiktoken(write("bad.tiktoken", "IQ== 0\n!!!! 1\n")); });
  EXPECT_NE(msg.find("line 2"), std::string::npos) << msg;
  msg = error_of([&] { Tokenizer::from_tiktoken(write("rank.tiktoken", "IQ== x\n")); });
  EXPECT_NE(msg.find("rank"), std::string::npos) << msg;
  // One line with a 9-digit rank sized the rank table to a billion strings (32 GB) before
  // any check (seen reading the loader after a tiktoken_fuzz timeout, docs/hardening.md).
  msg = error_of([&] { Tokenizer::from_tiktoken(write("gap.tiktoken", "IQ== 0\nIg== 999999999\n")); });
  EXPECT_NE(msg.find("line 2: rank 999999999"), std::string::npos) << msg;
  // Dense ranks pass the rank check (this file then lacks the 256 single bytes).
  msg = error_of([&] { Tokenizer::from_tiktoken(write("dense.tiktoken", "IQ== 0\nIg== 1\n")); });
  EXPECT_NE(msg.find("single byte"), std::string::npos) << msg;
  // A truncated real model must fail cleanly at every cut.
  auto real = test::shared_data("tokenizers/sentencepiece-unigram-botchan/test_model.model");
  LMX_REQUIRE_PATH(real);
  std::string data = test::read_text(real);
  for (size_t cut : {size_t{5}, size_t{100}, data.size() / 2, data.size() - 3}) {
    auto p = write("cut.model", data.substr(0, cut));
    try {
      Tokenizer::from_sentencepiece(p).encode("hello");
    } catch (const FormatError& e) {
      EXPECT_NE(std::string(e.what()).find("cut.model"), std::string::npos);
    }
  }
  std::filesystem::remove_all(dir);
}

// A megabyte of one repeated character: the merge loop must stay near-linear
// (measured as merge candidates examined, not time).
TEST(BadInput, BpeNearLinearOnRepeatedCharacter) {
  for (const char* name : {"qwen3", "llama2_spm", "gemma3"}) {
    const auto* src = test::find_source(name);
    LMX_REQUIRE_PATH(src->path);
    Tokenizer tok = src->load();
    for (const std::string unit : {"a", " ", "\xE6\x97\xA5"}) {
      std::string text;
      while (text.size() < (1u << 20)) text += unit;
      uint64_t before = tok.debug_model_work();
      auto ids = tok.encode(text, false);
      uint64_t work = tok.debug_model_work() - before;
      size_t chars = text.size() / unit.size();
      EXPECT_LT(work, 40 * chars) << name << " unit [" << unit << "]";
      EXPECT_GT(ids.size(), 0u);
      EXPECT_LE(ids.size(), 2 * chars + 1) << name << " unit [" << unit << "]";
      EXPECT_EQ(tok.decode(ids, false, false).size() >= text.size() - 1, true) << name;
    }
  }
}

}  // namespace
}  // namespace lmx::tokenizer
