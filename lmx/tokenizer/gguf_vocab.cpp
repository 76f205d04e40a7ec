// Tokenizers from a GGUF file's metadata (tokenizer.ggml.*): the vocab-only files of
// llama.cpp's tests and any GGUF model. Only the key/value section is read.
#include <cstring>

#include "lmx/base/error.h"
#include "lmx/tokenizer/decoders.h"
#include "lmx/tokenizer/models.h"
#include "lmx/tokenizer/normalizers.h"
#include "lmx/tokenizer/post_processors.h"
#include "lmx/tokenizer/pre_tokenizers.h"
#include "lmx/tokenizer/sentencepiece_model.h"
#include "lmx/tokenizer/tokenizer.h"
#include "lmx/tokenizer/tokenizer_impl.h"

namespace lmx::tokenizer {

namespace detail {
namespace {

// The tokenizer.ggml.* values we use.
struct GgufVocab {
  std::string model, pre;
  std::vector<std::string> tokens, merges;
  std::vector<float> scores;
  std::vector<int32_t> types;
  std::optional<int64_t> bos, eos, unk, pad, sep, cls, mask;
  std::optional<bool> add_bos, add_eos, add_space_prefix;
  std::string chat_template;
};

class GgufReader {
 public:
  GgufReader(std::string_view data, const std::string& what) : d_(data), what_(what) {}

  GgufVocab read() {
    if (d_.size() < 24 || d_.substr(0, 4) != "GGUF") fail("not a GGUF file (bad magic)");
    pos_ = 4;
    uint32_t version = u32();
    if (version < 2 || version > 3) fail("unsupported GGUF version " + std::to_string(version));
    u64();  // tensor count
    uint64_t kv_count = u64();
    if (kv_count > (1u << 20)) fail("implausible metadata count " + std::to_string(kv_count));
    GgufVocab v;
    for (uint64_t k = 0; k < kv_count; ++k) {
      std::string key = str();
      uint32_t type = u32();
      if (key.rfind("tokenizer.", 0) != 0) {
        skip(type);
        continue;
      }
      auto as_int = [&]() -> int64_t { return integer(type, key); };
      if (key == "tokenizer.ggml.model") {
        v.model = expect_str(type, key);
      } else if (key == "tokenizer.ggml.pre") {
        v.pre = expect_str(type, key);
      } else if (key == "tokenizer.ggml.tokens") {
        v.tokens = str_array(type, key);
      } else if (key == "tokenizer.ggml.merges") {
        v.merges = str_array(type, key);
      } else if (key == "tokenizer.ggml.scores") {
        array_of(type, key, [&](uint32_t et) {
          if (et != 6) fail(key + ": expected float32 values");
          float f;
          std::memcpy(&f, take(4), 4);
          v.scores.push_back(f);
        });
      } else if (key == "tokenizer.ggml.token_type") {
        array_of(type, key,
                 [&](uint32_t et) { v.types.push_back(static_cast<int32_t>(integer(et, key))); });
      } else if (key == "tokenizer.ggml.bos_token_id") {
        v.bos = as_int();
      } else if (key == "tokenizer.ggml.eos_token_id") {
        v.eos = as_int();
      } else if (key == "tokenizer.ggml.unknown_token_id") {
        v.unk = as_int();
      } else if (key == "tokenizer.ggml.padding_token_id") {
        v.pad = as_int();
      } else if (key == "tokenizer.ggml.seperator_token_id") {
        v.sep = as_int();
      } else if (key == "tokenizer.ggml.cls_token_id") {
        v.cls = as_int();
      } else if (key == "tokenizer.ggml.mask_token_id") {
        v.mask = as_int();
      } else if (key == "tokenizer.ggml.add_bos_token") {
        v.add_bos = boolean(type, key);
      } else if (key == "tokenizer.ggml.add_eos_token") {
        v.add_eos = boolean(type, key);
      } else if (key == "tokenizer.ggml.add_space_prefix") {
        v.add_space_prefix = boolean(type, key);
      } else if (key == "tokenizer.chat_template") {
        v.chat_template = expect_str(type, key);
      } else {
        skip(type);
      }
    }
    if (v.tokens.empty()) fail("no tokenizer.ggml.tokens");
    return v;
  }

 private:
  [[noreturn]] void fail(const std::string& msg) const {
    throw FormatError(what_ + ": " + msg + " (at byte " + std::to_string(pos_) + ")");
  }
  const char* take(size_t n) {
    if (n > d_.size() - pos_) fail("truncated metadata");
    const char* p = d_.data() + pos_;
    pos_ += n;
    return p;
  }
  uint32_t u32() {
    uint32_t v;
    std::memcpy(&v, take(4), 4);
    return v;
  }
  uint64_t u64() {
    uint64_t v;
    std::memcpy(&v, take(8), 8);
    return v;
  }
  std::string str() {
    uint64_t n = u64();
    if (n > d_.size() - pos_) fail("string length " + std::to_string(n) + " runs past the end");
    return std::string(take(n), n);
  }
  static size_t scalar_size(uint32_t type) {
    switch (type) {
      case 0:
      case 1:
      case 7:
        return 1;
      case 2:
      case 3:
        return 2;
      case 4:
      case 5:
      case 6:
        return 4;
      case 10:
      case 11:
      case 12:
        return 8;
      default:
        return 0;
    }
  }
  int64_t integer(uint32_t type, const std::string& key) {
    switch (type) {
      case 0:
        return static_cast<uint8_t>(*take(1));
      case 1:
        return static_cast<int8_t>(*take(1));
      case 2: {
        uint16_t v;
        std::memcpy(&v, take(2), 2);
        return v;
      }
      case 3: {
        int16_t v;
        std::memcpy(&v, take(2), 2);
        return v;
      }
      case 4:
        return u32();
      case 5: {
        int32_t v;
        std::memcpy(&v, take(4), 4);
        return v;
      }
      case 10:
        return static_cast<int64_t>(u64());
      case 11: {
        int64_t v;
        std::memcpy(&v, take(8), 8);
        return v;
      }
      default:
        fail(key + ": expected an integer (type " + std::to_string(type) + ")");
    }
  }
  bool boolean(uint32_t type, const std::string& key) {
    if (type != 7) fail(key + ": expected a bool");
    return *take(1) != 0;
  }
  std::string expect_str(uint32_t type, const std::string& key) {
    if (type != 8) fail(key + ": expected a string");
    return str();
  }
  template <typename Fn>
  void array_of(uint32_t type, const std::string& key, Fn&& each) {
    if (type != 9) fail(key + ": expected an array");
    uint32_t et = u32();
    uint64_t n = u64();
    if (n > d_.size() - pos_) fail(key + ": array of " + std::to_string(n) + " runs past the end");
    for (uint64_t k = 0; k < n; ++k) each(et);
  }
  std::vector<std::string> str_array(uint32_t type, const std::string& key) {
    std::vector<std::string> out;
    array_of(type, key, [&](uint32_t et) {
      if (et != 8) fail(key + ": expected strings");
      out.push_back(str());
    });
    return out;
  }
  // Arrays may hold arrays; the nesting is bounded so that the input cannot choose the
  // recursion depth (100000 levels cost 1.2 MB of file and overflowed the stack).
  static constexpr int kMaxArrayNesting = 16;
  void skip(uint32_t type, int depth = 0) {
    if (type == 8) {
      str();
    } else if (type == 9) {
      if (depth >= kMaxArrayNesting)
        fail("arrays nested deeper than " + std::to_string(kMaxArrayNesting) + " levels");
      array_of(type, "array", [&](uint32_t et) { skip(et, depth + 1); });
    } else if (size_t n = scalar_size(type)) {
      take(n);
    } else {
      fail("unknown metadata type " + std::to_string(type));
    }
  }

  std::string_view d_;
  size_t pos_ = 0;
  const std::string& what_;
};

// DeepSeek-LLM's letter class (cased scripts), from its tokenizer.json.
const char* const kDeepSeekLlmLetters =
    "\\s?[A-Za-z\u00B5\u00C0-\u00D6\u00D8-\u00F6\u00F8-\u01BA\u01BC-\u01BF\u01C4-\u0293"
    "\u0295-\u02AF\u0370-\u0373\u0376\u0377\u037B-\u037D\u037F\u0386\u0388-\u038A\u038C"
    "\u038E-\u03A1\u03A3-\u03F5\u03F7-\u0481\u048A-\u052F\u0531-\u0556\u10A0-\u10C5"
    "\u13A0-\u13F5\u13F8-\u13FD\u1C90-\u1CBA\u1CBD-\u1CBF\u1D00-\u1D2B\u1D6B-\u1D77"
    "\u1D79-\u1D9A\u1E00-\u1F15\u1F18-\u1F1D\u1F20-\u1F45\u1F48-\u1F4D\u1F50-\u1F57\u1F59"
    "\u1F5B\u1F5D\u1F5F-\u1F7D\u1F80-\u1FB4\u1FB6-\u1FBC\u1FBE\u1FC2-\u1FC4\u1FC6-\u1FCC"
    "\u1FD0-\u1FD3\u1FD6-\u1FDB\u1FE0-\u1FEC\u1FF2-\u1FF4\u1FF6-\u1FFC\u2102\u2107"
    "\u210A-\u2113\u2115\u2119-\u211D\u2124\u2126\u2128\u212A-\u212D\u212F-\u2134\u2139"
    "\u213C-\u213F\u2145-\u2149\u214E\u2183\u2184\u2C00-\u2C7B\u2C7E-\u2CE4\u2CEB-\u2CEE"
    "\u2CF2\u2CF3\uA640-\uA66D\uA680-\uA69B\uA722-\uA76F\uA771-\uA787\uA78B-\uA78E"
    "\uAB70-\uABBF\uFB00-\uFB06\uFB13-\uFB17\uFF21-\uFF3A\uFF41-\uFF5A\U00010400-\U0001044F"
    "\U000104B0-\U000104D3\U000104D8-\U000104FB\U00010C80-\U00010CB2\U00010CC0-\U00010CF2"
    "\U000118A0-\U000118DF\U0001E900-\U0001E943]+";

std::shared_ptr<TokenizerImpl> build_gguf(const GgufVocab& v, const std::string& source) {
  const auto n = static_cast<int64_t>(v.tokens.size());
  auto check_id = [&](const std::optional<int64_t>& id,
                      const char* name) -> std::optional<int32_t> {
    if (!id) return std::nullopt;
    if (*id < 0 || *id >= n) {
      throw FormatError(source + ": tokenizer.ggml." + name + " " + std::to_string(*id) +
                        " is outside the " + std::to_string(n) + "-token vocab");
    }
    return static_cast<int32_t>(*id);
  };
  auto bos = check_id(v.bos, "bos_token_id");
  auto eos = check_id(v.eos, "eos_token_id");
  auto unk = check_id(v.unk, "unknown_token_id");
  auto pad = check_id(v.pad, "padding_token_id");
  auto sep = check_id(v.sep, "seperator_token_id");
  auto cls = check_id(v.cls, "cls_token_id");
  auto type_of = [&](int64_t id) {
    return id < static_cast<int64_t>(v.types.size()) ? v.types[id] : 1;
  };

  if (v.model == "llama") {
    SentencePieceProto proto;
    proto.model_type = SentencePieceProto::kBpe;
    proto.byte_fallback = true;
    proto.remove_extra_whitespaces = false;
    proto.add_dummy_prefix = v.add_space_prefix.value_or(true);
    proto.unk_id = unk.value_or(-1);
    proto.bos_id = bos.value_or(-1);
    proto.eos_id = eos.value_or(-1);
    proto.pad_id = -1;
    for (int64_t id = 0; id < n; ++id) {
      proto.pieces.push_back({v.tokens[id],
                              id < static_cast<int64_t>(v.scores.size()) ? v.scores[id] : 0.0f,
                              type_of(id)});
    }
    auto impl = build_sentencepiece(proto, source);
    impl->config.chat_template = v.chat_template;
    return impl;
  }

  auto impl = std::make_shared<TokenizerImpl>();
  impl->source = source;
  std::vector<AddedToken> added;
  for (int64_t id = 0; id < n; ++id) {
    int32_t t = type_of(id);
    if (t == 3)
      added.push_back({v.tokens[id], static_cast<int32_t>(id), true, false, false, false, false});
    if (t == 4)
      added.push_back({v.tokens[id], static_cast<int32_t>(id), false, false, false, false, false});
  }
  auto name = [&](const std::optional<int32_t>& id) -> std::optional<std::string> {
    if (!id) return std::nullopt;
    return v.tokens[*id];
  };
  impl->config.bos_token = name(bos);
  impl->config.eos_token = name(eos);
  impl->config.unk_token = name(unk);
  impl->config.pad_token = name(pad);
  impl->config.chat_template = v.chat_template;

  if (v.model == "gpt2") {
    Vocab vocab;
    vocab.reserve(v.tokens.size());
    for (int64_t id = 0; id < n; ++id) vocab.add(v.tokens[id], static_cast<int32_t>(id));
    std::vector<BpeModel::Merge> merges;
    merges.reserve(v.merges.size());
    std::string merged;
    for (size_t k = 0; k < v.merges.size(); ++k) {
      const std::string& m = v.merges[k];
      size_t sp = m.find(' ');
      auto a =
          sp == std::string::npos ? std::nullopt : vocab.find(std::string_view(m).substr(0, sp));
      auto b =
          sp == std::string::npos ? std::nullopt : vocab.find(std::string_view(m).substr(sp + 1));
      merged = sp == std::string::npos ? m : m.substr(0, sp) + m.substr(sp + 1);
      auto ab = vocab.find(merged);
      if (!a || !b || !ab) {
        throw FormatError(source + ": tokenizer.ggml.merges[" + std::to_string(k) + "] '" + m +
                          "' names a token not in the vocab");
      }
      merges.push_back({*a, *b, *ab, static_cast<int32_t>(k)});
    }
    impl->model = std::make_unique<BpeModel>(std::move(vocab), merges, BpeOptions{});
    // The pre-tokenizer each llama.cpp "pre" name stands for (HF tokenizer.json).
    std::vector<std::unique_ptr<PreTokenizer>> pre;
    const std::string& p = v.pre;
    if (p.empty() || p == "gpt-2" || p == "mpt" || p == "gpt-neox" || p == "default") {
      if (p == "mpt" || p == "gpt-neox")
        impl->normalizer = std::make_unique<UnicodeNormalizer>(NormalForm::kNFC);
      pre.push_back(std::make_unique<ByteLevelPreTokenizer>(false, true));
    } else if (p == "starcoder" || p == "refact") {
      pre.push_back(make_digits_pre_tokenizer(true));
      pre.push_back(std::make_unique<ByteLevelPreTokenizer>(false, true));
    } else if (p == "falcon") {
      pre.push_back(make_punctuation_pre_tokenizer(SplitBehavior::kContiguous));
      pre.push_back(std::make_unique<ByteLevelPreTokenizer>(false, true));
      pre.push_back(make_digits_pre_tokenizer(false));
      pre.push_back(std::make_unique<SplitPreTokenizer>(Pattern::regex("[0-9][0-9][0-9]", source),
                                                        SplitBehavior::kIsolated, false));
    } else if (p == "deepseek-coder" || p == "deepseek-llm") {
      // DeepSeek's tokenizer.json: a chain of isolating splits, then bytes.
      const char* const cjk = "[\\x{4E00}-\\x{9FA5}\\x{0800}-\\x{4E00}\\x{AC00}-\\x{D7FF}]+";
      std::vector<std::string> patterns;
      if (p == "deepseek-coder") {
        patterns = {"[\\r\\n]", "\\s?\\p{L}+", "\\s?\\p{P}+", cjk, "\\p{N}"};
      } else {
        patterns = {
            "[\\r\\n]",
            kDeepSeekLlmLetters,
            "\\s?[!-/"
            ":-~\\x{FF01}-\\x{FF0F}\\x{FF1A}-\\x{FF5E}\\x{2018}-\\x{201F}\\x{3000}-\\x{3002}]+",
            "\\s+$",
            cjk,
            "\\p{N}+"};
      }
      for (const auto& pattern : patterns) {
        pre.push_back(std::make_unique<SplitPreTokenizer>(Pattern::regex(pattern, source),
                                                          SplitBehavior::kIsolated, false));
      }
      pre.push_back(std::make_unique<ByteLevelPreTokenizer>(false, false));
    } else {
      throw Unsupported(source + ": tokenizer.ggml.pre '" + p + "' is not supported");
    }
    impl->pre_tokenizer = std::make_unique<SequencePreTokenizer>(std::move(pre));
    impl->decoder = std::make_unique<ByteLevelDecoder>();
    if (v.add_bos.value_or(false) && bos) {
      std::vector<TemplatePiece> single = {{false, 0, {*bos}, 0}, {true, 0, {}, 0}};
      std::vector<TemplatePiece> pair = {
          {false, 0, {*bos}, 0}, {true, 0, {}, 0}, {false, 0, {*bos}, 1}, {true, 1, {}, 1}};
      impl->post_processor =
          std::make_unique<TemplateProcessor>(std::move(single), std::move(pair));
    }
  } else if (v.model == "bert") {
    // llama.cpp stores WordPiece tokens as "\u2581word" (word start) and "piece" (was
    // "##piece"); bracketed tokens ([CLS], [unused0]) are kept as they were.
    Vocab vocab;
    const std::string space = "\xE2\x96\x81";
    for (int64_t id = 0; id < n; ++id) {
      const std::string& t = v.tokens[id];
      std::string orig;
      if (t.compare(0, space.size(), space) == 0) {
        orig = t.substr(space.size());
      } else if (t.size() >= 2 && t.front() == '[' && t.back() == ']') {
        orig = t;
      } else {
        orig = "##" + t;
      }
      vocab.add(orig, static_cast<int32_t>(id));
    }
    for (auto& a : added) a.content = std::string(vocab.token(a.id));
    WordPieceOptions opt;
    if (unk) opt.unk_token = v.tokens[*unk];
    impl->model = std::make_unique<WordPieceModel>(std::move(vocab), opt);
    // llama.cpp converts only uncased BERT vocabularies this way (lowercasing).
    impl->normalizer = std::make_unique<BertNormalizer>(true, true, true, true);
    impl->pre_tokenizer = make_bert_pre_tokenizer();
    impl->decoder = std::make_unique<WordPieceDecoder>("##", true);
    if (cls && sep) impl->post_processor = make_bert_processor(*cls, *sep);
    impl->config.sep_token = name(sep);
    impl->config.cls_token = name(cls);
  } else {
    throw Unsupported(source + ": tokenizer.ggml.model '" + v.model + "' is not supported");
  }
  impl->added.build(std::move(added), impl->normalizer.get());
  impl->vocab_size = impl->model->vocab_size();
  return impl;
}

}  // namespace
}  // namespace detail

Tokenizer Tokenizer::from_gguf(const std::filesystem::path& file) {
  std::string data = detail::read_file(file);
  auto impl = detail::build_gguf(detail::GgufReader(data, file.string()).read(), file.string());
  impl->finalize();
  return Tokenizer(std::move(impl));
}

}  // namespace lmx::tokenizer
