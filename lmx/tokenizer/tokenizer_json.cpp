// tokenizer.json (Hugging Face `tokenizers` serialization) -> TokenizerImpl.
#include <algorithm>
#include <nlohmann/json.hpp>

#include "lmx/base/base64.h"
#include "lmx/base/error.h"
#include "lmx/tokenizer/decoders.h"
#include "lmx/tokenizer/json_scan.h"
#include "lmx/tokenizer/models.h"
#include "lmx/tokenizer/normalizers.h"
#include "lmx/tokenizer/post_processors.h"
#include "lmx/tokenizer/pre_tokenizers.h"
#include "lmx/tokenizer/tokenizer_impl.h"

namespace lmx::tokenizer::detail {

using Json = nlohmann::json;

namespace {

// Field access that names the file and JSON path in every error.
class Reader {
 public:
  explicit Reader(std::string source) : source_(std::move(source)) {}

  [[noreturn]] void fail(const std::string& path, const std::string& what) const {
    throw FormatError(source_ + ": " + path + ": " + what);
  }
  const Json& get(const Json& j, const char* key, const std::string& path) const {
    if (!j.is_object()) fail(path, "expected an object");
    auto it = j.find(key);
    if (it == j.end()) fail(path + "." + key, "missing");
    return *it;
  }
  const Json* find(const Json& j, const char* key) const {
    if (!j.is_object()) return nullptr;
    auto it = j.find(key);
    return it == j.end() || it->is_null() ? nullptr : &*it;
  }
  std::string str(const Json& j, const char* key, const std::string& path) const {
    const Json& v = get(j, key, path);
    if (!v.is_string()) fail(path + "." + key, "expected a string");
    return v.get<std::string>();
  }
  std::string str_or(const Json& j,
                     const char* key,
                     const std::string& path,
                     std::string dflt) const {
    const Json* v = find(j, key);
    if (!v) return dflt;
    if (!v->is_string()) fail(path + "." + key, "expected a string");
    return v->get<std::string>();
  }
  bool boolean_or(const Json& j, const char* key, const std::string& path, bool dflt) const {
    const Json* v = find(j, key);
    if (!v) return dflt;
    if (!v->is_boolean()) fail(path + "." + key, "expected true or false");
    return v->get<bool>();
  }
  int64_t integer(const Json& v, const std::string& path) const {
    if (!v.is_number_integer()) fail(path, "expected an integer");
    return v.get<int64_t>();
  }
  int32_t token_id(const Json& v, const std::string& path) const {
    int64_t id = integer(v, path);
    // Ids index tables; anything past 2^24 is a corrupt file, not a real vocab.
    if (id < 0 || id >= (int64_t{1} << 24))
      fail(path, "token id " + std::to_string(id) + " out of range");
    return static_cast<int32_t>(id);
  }
  const std::string& source() const { return source_; }

 private:
  std::string source_;
};

Pattern parse_pattern(const Reader& r, const Json& j, const std::string& path) {
  const Json& p = r.get(j, "pattern", path);
  if (const Json* s = r.find(p, "String")) {
    if (!s->is_string()) r.fail(path + ".pattern.String", "expected a string");
    return Pattern::literal(s->get<std::string>());
  }
  if (const Json* s = r.find(p, "Regex")) {
    if (!s->is_string()) r.fail(path + ".pattern.Regex", "expected a string");
    return Pattern::regex(s->get<std::string>(), r.source() + ": " + path + ".pattern.Regex");
  }
  r.fail(path + ".pattern", "expected {\"String\": ...} or {\"Regex\": ...}");
}

SplitBehavior parse_behavior(const Reader& r,
                             const Json& j,
                             const std::string& path,
                             SplitBehavior dflt) {
  const Json* b = r.find(j, "behavior");
  if (!b) return dflt;
  std::string s = b->is_string() ? b->get<std::string>() : "";
  if (s == "Removed") return SplitBehavior::kRemoved;
  if (s == "Isolated") return SplitBehavior::kIsolated;
  if (s == "MergedWithPrevious") return SplitBehavior::kMergedWithPrevious;
  if (s == "MergedWithNext") return SplitBehavior::kMergedWithNext;
  if (s == "Contiguous") return SplitBehavior::kContiguous;
  r.fail(path + ".behavior", "unknown split behavior '" + s + "'");
}

PrependScheme parse_prepend_scheme(const Reader& r, const Json& j, const std::string& path) {
  if (const Json* s = r.find(j, "prepend_scheme")) {
    std::string v = s->is_string() ? s->get<std::string>() : "";
    if (v == "first") return PrependScheme::kFirst;
    if (v == "always") return PrependScheme::kAlways;
    if (v == "never") return PrependScheme::kNever;
    r.fail(path + ".prepend_scheme", "expected first, always or never");
  }
  // Files written before prepend_scheme existed say add_prefix_space.
  return r.boolean_or(j, "add_prefix_space", path, true) ? PrependScheme::kAlways
                                                         : PrependScheme::kNever;
}

std::string type_of(const Reader& r, const Json& j, const std::string& path) {
  return r.str(j, "type", path);
}

std::unique_ptr<Normalizer> parse_normalizer(const Reader& r,
                                             const Json& j,
                                             const std::string& path) {
  if (j.is_null()) return nullptr;
  std::string type = type_of(r, j, path);
  if (type == "Sequence") {
    std::vector<std::unique_ptr<Normalizer>> items;
    const Json& list = r.get(j, "normalizers", path);
    if (!list.is_array()) r.fail(path + ".normalizers", "expected an array");
    for (size_t k = 0; k < list.size(); ++k) {
      auto n = parse_normalizer(r, list[k], path + ".normalizers[" + std::to_string(k) + "]");
      if (n) items.push_back(std::move(n));
    }
    return std::make_unique<SequenceNormalizer>(std::move(items));
  }
  if (type == "NFC") return std::make_unique<UnicodeNormalizer>(NormalForm::kNFC);
  if (type == "NFD") return std::make_unique<UnicodeNormalizer>(NormalForm::kNFD);
  if (type == "NFKC") return std::make_unique<UnicodeNormalizer>(NormalForm::kNFKC);
  if (type == "NFKD") return std::make_unique<UnicodeNormalizer>(NormalForm::kNFKD);
  if (type == "Lowercase") return std::make_unique<LowercaseNormalizer>();
  if (type == "Strip") {
    return std::make_unique<StripNormalizer>(r.boolean_or(j, "strip_left", path, true),
                                             r.boolean_or(j, "strip_right", path, true));
  }
  if (type == "StripAccents") return std::make_unique<StripAccentsNormalizer>();
  if (type == "Replace") {
    return std::make_unique<ReplaceNormalizer>(parse_pattern(r, j, path),
                                               r.str(j, "content", path));
  }
  if (type == "Prepend") return std::make_unique<PrependNormalizer>(r.str(j, "prepend", path));
  if (type == "BertNormalizer") {
    bool lowercase = r.boolean_or(j, "lowercase", path, true);
    const Json* sa = r.find(j, "strip_accents");
    bool strip = sa ? sa->is_boolean() && sa->get<bool>() : lowercase;
    return std::make_unique<BertNormalizer>(r.boolean_or(j, "clean_text", path, true),
                                            r.boolean_or(j, "handle_chinese_chars", path, true),
                                            strip, lowercase);
  }
  if (type == "Nmt") return std::make_unique<NmtNormalizer>();
  if (type == "Precompiled") {
    const Json* c = r.find(j, "precompiled_charsmap");
    std::string blob;
    if (c) {
      if (!c->is_string()) r.fail(path + ".precompiled_charsmap", "expected a base64 string");
      auto decoded = decode_base64(c->get<std::string>());
      if (!decoded) r.fail(path + ".precompiled_charsmap", "invalid base64");
      blob = std::move(*decoded);
    }
    return std::make_unique<PrecompiledNormalizer>(
        std::make_shared<const CharsMap>(std::move(blob), r.source() + ": " + path));
  }
  r.fail(path + ".type", "unsupported normalizer '" + type + "'");
}

std::unique_ptr<PreTokenizer> parse_pre_tokenizer(const Reader& r,
                                                  const Json& j,
                                                  const std::string& path) {
  if (j.is_null()) return nullptr;
  std::string type = type_of(r, j, path);
  if (type == "Sequence") {
    std::vector<std::unique_ptr<PreTokenizer>> items;
    const Json& list = r.get(j, "pretokenizers", path);
    if (!list.is_array()) r.fail(path + ".pretokenizers", "expected an array");
    for (size_t k = 0; k < list.size(); ++k) {
      auto p = parse_pre_tokenizer(r, list[k], path + ".pretokenizers[" + std::to_string(k) + "]");
      if (p) items.push_back(std::move(p));
    }
    return std::make_unique<SequencePreTokenizer>(std::move(items));
  }
  if (type == "ByteLevel") {
    return std::make_unique<ByteLevelPreTokenizer>(r.boolean_or(j, "add_prefix_space", path, true),
                                                   r.boolean_or(j, "use_regex", path, true));
  }
  if (type == "Split") {
    return std::make_unique<SplitPreTokenizer>(parse_pattern(r, j, path),
                                               parse_behavior(r, j, path, SplitBehavior::kIsolated),
                                               r.boolean_or(j, "invert", path, false));
  }
  if (type == "Metaspace") {
    return std::make_unique<MetaspacePreTokenizer>(r.str_or(j, "replacement", path, "\xE2\x96\x81"),
                                                   parse_prepend_scheme(r, j, path),
                                                   r.boolean_or(j, "split", path, true));
  }
  if (type == "Whitespace") return make_whitespace_pre_tokenizer();
  if (type == "WhitespaceSplit") return make_whitespace_split_pre_tokenizer();
  if (type == "BertPreTokenizer") return make_bert_pre_tokenizer();
  if (type == "Punctuation") {
    return make_punctuation_pre_tokenizer(parse_behavior(r, j, path, SplitBehavior::kIsolated));
  }
  if (type == "Digits")
    return make_digits_pre_tokenizer(r.boolean_or(j, "individual_digits", path, false));
  if (type == "UnicodeScripts") return make_unicode_scripts_pre_tokenizer();
  r.fail(path + ".type", "unsupported pre-tokenizer '" + type + "'");
}

std::unique_ptr<Decoder> parse_decoder(const Reader& r, const Json& j, const std::string& path) {
  if (j.is_null()) return nullptr;
  std::string type = type_of(r, j, path);
  if (type == "Sequence") {
    std::vector<std::unique_ptr<Decoder>> items;
    const Json& list = r.get(j, "decoders", path);
    if (!list.is_array()) r.fail(path + ".decoders", "expected an array");
    for (size_t k = 0; k < list.size(); ++k) {
      auto d = parse_decoder(r, list[k], path + ".decoders[" + std::to_string(k) + "]");
      if (d) items.push_back(std::move(d));
    }
    return std::make_unique<SequenceDecoder>(std::move(items));
  }
  if (type == "ByteLevel") return std::make_unique<ByteLevelDecoder>();
  if (type == "ByteFallback") return std::make_unique<ByteFallbackDecoder>();
  if (type == "Fuse") return std::make_unique<FuseDecoder>();
  if (type == "Metaspace") {
    return std::make_unique<MetaspaceDecoder>(r.str_or(j, "replacement", path, "\xE2\x96\x81"),
                                              parse_prepend_scheme(r, j, path));
  }
  if (type == "WordPiece") {
    return std::make_unique<WordPieceDecoder>(r.str_or(j, "prefix", path, "##"),
                                              r.boolean_or(j, "cleanup", path, true));
  }
  if (type == "Replace") {
    return std::make_unique<ReplaceDecoder>(parse_pattern(r, j, path), r.str(j, "content", path));
  }
  if (type == "Strip") {
    const Json* s = r.find(j, "start");
    const Json* e = r.find(j, "stop");
    return std::make_unique<StripDecoder>(
        r.str(j, "content", path), s ? static_cast<size_t>(r.integer(*s, path + ".start")) : 0,
        e ? static_cast<size_t>(r.integer(*e, path + ".stop")) : 0);
  }
  if (type == "CTC") {
    return std::make_unique<CtcDecoder>(r.str_or(j, "pad_token", path, "<pad>"),
                                        r.str_or(j, "word_delimiter_token", path, "|"),
                                        r.boolean_or(j, "cleanup", path, true));
  }
  if (type == "BPEDecoder")
    return std::make_unique<BpeSuffixDecoder>(r.str_or(j, "suffix", path, "</w>"));
  r.fail(path + ".type", "unsupported decoder '" + type + "'");
}

// model.vocab and model.merges, read straight from the text (see json_scan.h).
struct LargeValues {
  const JsonScanner& scan;
  JsonScanner::ModelSpans spans;
  bool has_vocab() const { return spans.vocab_begin != std::string_view::npos; }
  bool has_merges() const { return spans.merges_begin != std::string_view::npos; }
};

Vocab read_vocab(const Reader& r, const LargeValues& large, const std::string& path) {
  if (!large.has_vocab()) r.fail(path, "missing");
  Vocab v;
  // ~12 bytes of JSON per entry in real files; a close guess saves rehashing.
  v.reserve((large.spans.vocab_end - large.spans.vocab_begin) / 12 + 16);
  large.scan.read_vocab_object(large.spans.vocab_begin, [&](std::string&& token, int64_t id) {
    if (id < 0 || id >= (int64_t{1} << 24)) {
      r.fail(path + "[\"" + token + "\"]", "token id " + std::to_string(id) + " out of range");
    }
    v.add(std::move(token), static_cast<int32_t>(id));
  });
  return v;
}

std::unique_ptr<Model> parse_model(const Reader& r,
                                   const Json& m,
                                   const std::string& path,
                                   const LargeValues& large) {
  if (!m.is_object()) r.fail(path, "expected an object");
  std::string type = r.str_or(m, "type", path, "");
  if (type.empty()) {
    // Files written by old versions of `tokenizers` carry no type: infer it.
    if (large.has_merges()) {
      type = "BPE";
    } else if (large.has_vocab() && large.scan.at(large.spans.vocab_begin) == '[') {
      type = "Unigram";
    } else if (r.find(m, "max_input_chars_per_word") || r.find(m, "continuing_subword_prefix")) {
      type = "WordPiece";
    } else {
      type = "WordLevel";
    }
  }
  if (type == "BPE") {
    Vocab vocab = read_vocab(r, large, path + ".vocab");
    BpeOptions opt;
    if (const Json* u = r.find(m, "unk_token")) {
      if (!u->is_string()) r.fail(path + ".unk_token", "expected a string");
      opt.unk_token = u->get<std::string>();
    }
    opt.continuing_subword_prefix = r.str_or(m, "continuing_subword_prefix", path, "");
    opt.end_of_word_suffix = r.str_or(m, "end_of_word_suffix", path, "");
    opt.fuse_unk = r.boolean_or(m, "fuse_unk", path, false);
    opt.byte_fallback = r.boolean_or(m, "byte_fallback", path, false);
    opt.ignore_merges = r.boolean_or(m, "ignore_merges", path, false);
    std::vector<BpeModel::Merge> resolved;
    if (large.has_merges()) {
      // Pass 1: split every merge into (a, b), stored back to back in one arena so
      // a + b (the merged token) is a slice too. Pass 2 looks the three up in batches
      // with prefetches: this is the bulk of load time for 500k-merge files.
      struct Entry {
        uint32_t offset, a_len, b_len;
      };
      std::string arena;
      std::vector<Entry> entries;
      arena.reserve(large.spans.merges_end - large.spans.merges_begin);
      entries.reserve(1 << 17);
      large.scan.read_merges(
          large.spans.merges_begin, [&](std::string& first, std::string& second, size_t k) {
            std::string_view a, b;
            if (second.empty()) {
              const std::string& s = first;
              size_t sp = s.find(' ');
              if (sp == std::string::npos) {
                r.fail(path + ".merges[" + std::to_string(k) + "]",
                       "expected two tokens separated by a space, got '" + s + "'");
              }
              if (s.find(' ', sp + 1) != std::string::npos) {
                // Tokens that contain spaces make "a b" ambiguous (HF rejects such files);
                // take the first split whose halves are both tokens.
                for (size_t at = sp; at != std::string::npos; at = s.find(' ', at + 1)) {
                  if (vocab.find(std::string_view(s).substr(0, at)) &&
                      vocab.find(std::string_view(s).substr(at + 1))) {
                    sp = at;
                    break;
                  }
                }
              }
              a = std::string_view(s).substr(0, sp);
              b = std::string_view(s).substr(sp + 1);
            } else {
              a = first;
              b = second;
            }
            entries.push_back({static_cast<uint32_t>(arena.size()), static_cast<uint32_t>(a.size()),
                               static_cast<uint32_t>(b.size())});
            arena.append(a);
            arena.append(b);
          });
      const size_t prefix_len = opt.continuing_subword_prefix.size();
      resolved.resize(entries.size());
      constexpr size_t kBatch = 32;
      size_t hashes[kBatch][3];
      std::string merged;
      for (size_t base = 0; base < entries.size(); base += kBatch) {
        size_t n = std::min(kBatch, entries.size() - base);
        auto slices = [&](size_t k, std::string_view& a, std::string_view& b,
                          std::string_view& ab) {
          const Entry& e = entries[base + k];
          a = std::string_view(arena).substr(e.offset, e.a_len);
          b = std::string_view(arena).substr(e.offset + e.a_len, e.b_len);
          ab = std::string_view(arena).substr(e.offset, e.a_len + e.b_len);
        };
        for (size_t k = 0; k < n; ++k) {
          std::string_view a, b, ab;
          slices(k, a, b, ab);
          hashes[k][0] = StringHash{}(a);
          hashes[k][1] = StringHash{}(b);
          hashes[k][2] = StringHash{}(ab);
          for (size_t h : hashes[k]) vocab.prefetch(h);
        }
        for (size_t k = 0; k < n; ++k) {
          for (size_t h : hashes[k]) vocab.prefetch_span(h);
        }
        for (size_t k = 0; k < n; ++k) {
          for (size_t h : hashes[k]) vocab.prefetch_bytes(h);
        }
        for (size_t k = 0; k < n; ++k) {
          std::string_view a, b, ab;
          slices(k, a, b, ab);
          const size_t index = base + k;
          auto ia = vocab.find_hashed(a, hashes[k][0]);
          auto ib = vocab.find_hashed(b, hashes[k][1]);
          if (!ia || !ib) {
            r.fail(path + ".merges[" + std::to_string(index) + "]",
                   "merge names unknown token '" + std::string(!ia ? a : b) + "'");
          }
          std::optional<int32_t> im;
          if (prefix_len > 0 && b.size() >= prefix_len &&
              b.substr(0, prefix_len) == opt.continuing_subword_prefix) {
            merged.assign(a);
            merged.append(b.substr(prefix_len));
            ab = merged;
            im = vocab.find(ab);
          } else {
            im = vocab.find_hashed(ab, hashes[k][2]);
          }
          if (!im) {
            r.fail(path + ".merges[" + std::to_string(index) + "]",
                   "merged token '" + std::string(ab) + "' is not in the vocab");
          }
          resolved[index] = {*ia, *ib, *im, static_cast<int32_t>(index)};
        }
      }
    }
    return std::make_unique<BpeModel>(std::move(vocab), resolved, std::move(opt));
  }
  if (type == "WordPiece") {
    WordPieceOptions opt;
    opt.unk_token = r.str_or(m, "unk_token", path, "[UNK]");
    opt.continuing_subword_prefix = r.str_or(m, "continuing_subword_prefix", path, "##");
    if (const Json* n = r.find(m, "max_input_chars_per_word")) {
      opt.max_input_chars_per_word =
          static_cast<size_t>(r.integer(*n, path + ".max_input_chars_per_word"));
    }
    return std::make_unique<WordPieceModel>(read_vocab(r, large, path + ".vocab"), std::move(opt));
  }
  if (type == "WordLevel") {
    std::optional<std::string> unk;
    if (const Json* u = r.find(m, "unk_token")) unk = u->get<std::string>();
    return std::make_unique<WordLevelModel>(read_vocab(r, large, path + ".vocab"), unk);
  }
  if (type == "Unigram") {
    if (!large.has_vocab()) r.fail(path + ".vocab", "missing");
    std::vector<UnigramPiece> pieces;
    pieces.reserve(1 << 15);
    large.scan.read_scored_vocab(large.spans.vocab_begin, [&](std::string&& piece, double score) {
      pieces.push_back({std::move(piece), score, false, false});
    });
    std::optional<int32_t> unk;
    if (const Json* u = r.find(m, "unk_id")) unk = r.token_id(*u, path + ".unk_id");
    return std::make_unique<UnigramModel>(std::move(pieces), unk,
                                          r.boolean_or(m, "byte_fallback", path, false),
                                          r.source() + ": " + path);
  }
  r.fail(path + ".type", "unsupported model '" + type + "'");
}

std::unique_ptr<PostProcessor> parse_post_processor(const Reader& r,
                                                    const Json& j,
                                                    const std::string& path,
                                                    const TokenizerImpl& impl) {
  if (j.is_null()) return nullptr;
  std::string type = type_of(r, j, path);
  auto check_id = [&](int32_t id, const std::string& where) {
    if (static_cast<size_t>(id) >= impl.vocab_size) {
      r.fail(where, "special token id " + std::to_string(id) + " is not in the vocab (size " +
                        std::to_string(impl.vocab_size) + ")");
    }
    return id;
  };
  if (type == "Sequence") {
    std::vector<std::unique_ptr<PostProcessor>> items;
    const Json& list = r.get(j, "processors", path);
    if (!list.is_array()) r.fail(path + ".processors", "expected an array");
    for (size_t k = 0; k < list.size(); ++k) {
      auto p =
          parse_post_processor(r, list[k], path + ".processors[" + std::to_string(k) + "]", impl);
      if (p) items.push_back(std::move(p));
    }
    // Only templates change ids; keep them in order, drop pass-throughs.
    std::vector<std::unique_ptr<PostProcessor>> kept;
    for (auto& p : items) {
      if (!dynamic_cast<PassThroughProcessor*>(p.get())) kept.push_back(std::move(p));
    }
    if (kept.empty()) return std::make_unique<PassThroughProcessor>();
    if (kept.size() == 1) return std::move(kept[0]);
    return std::make_unique<SequenceProcessor>(std::move(kept));
  }
  if (type == "ByteLevel") return std::make_unique<PassThroughProcessor>();
  if (type == "BertProcessing" || type == "RobertaProcessing") {
    auto pair_id = [&](const char* key) {
      const Json& p = r.get(j, key, path);
      if (!p.is_array() || p.size() != 2) r.fail(path + "." + key, "expected [token, id]");
      return check_id(r.token_id(p[1], path + "." + key + "[1]"), path + "." + key);
    };
    int32_t cls = pair_id("cls"), sep = pair_id("sep");
    return type == "BertProcessing" ? make_bert_processor(cls, sep)
                                    : make_roberta_processor(cls, sep);
  }
  if (type == "TemplateProcessing") {
    const Json& specials = r.get(j, "special_tokens", path);
    auto parse_template = [&](const char* key) {
      std::vector<TemplatePiece> out;
      const Json& list = r.get(j, key, path);
      if (!list.is_array()) r.fail(path + "." + key, "expected an array");
      for (size_t k = 0; k < list.size(); ++k) {
        std::string where = path + "." + key + "[" + std::to_string(k) + "]";
        const Json& e = list[k];
        if (const Json* s = r.find(e, "Sequence")) {
          std::string id = r.str(*s, "id", where + ".Sequence");
          if (id != "A" && id != "B") r.fail(where + ".Sequence.id", "expected A or B");
          int32_t type_id =
              static_cast<int32_t>(r.integer(r.get(*s, "type_id", where), where + ".type_id"));
          out.push_back({true, id == "A" ? 0 : 1, {}, type_id});
        } else if (const Json* s = r.find(e, "SpecialToken")) {
          std::string id = r.str(*s, "id", where + ".SpecialToken");
          int32_t type_id =
              static_cast<int32_t>(r.integer(r.get(*s, "type_id", where), where + ".type_id"));
          const Json* tok = r.find(specials, id.c_str());
          if (!tok) r.fail(where, "special token '" + id + "' is not in special_tokens");
          const Json& ids = r.get(*tok, "ids", path + ".special_tokens." + id);
          if (!ids.is_array()) r.fail(path + ".special_tokens." + id + ".ids", "expected an array");
          TemplatePiece piece{false, 0, {}, type_id};
          for (const auto& v : ids) {
            piece.ids.push_back(check_id(r.token_id(v, path + ".special_tokens." + id + ".ids"),
                                         path + ".special_tokens." + id + ".ids"));
          }
          out.push_back(std::move(piece));
        } else {
          r.fail(where, "expected {\"Sequence\": ...} or {\"SpecialToken\": ...}");
        }
      }
      return out;
    };
    return std::make_unique<TemplateProcessor>(parse_template("single"), parse_template("pair"));
  }
  r.fail(path + ".type", "unsupported post-processor '" + type + "'");
}

}  // namespace

std::shared_ptr<TokenizerImpl> load_tokenizer_json(std::string_view text,
                                                   const std::string& source) {
  // The two big values are read by the scanner; nlohmann parses the rest, with them
  // replaced by null.
  JsonScanner scan(text, source);
  JsonScanner::ModelSpans spans = scan.find_model_spans();
  struct Span {
    size_t begin, end;
  };
  std::vector<Span> cut;
  if (spans.vocab_begin != std::string_view::npos)
    cut.push_back({spans.vocab_begin, spans.vocab_end});
  if (spans.merges_begin != std::string_view::npos)
    cut.push_back({spans.merges_begin, spans.merges_end});
  std::sort(cut.begin(), cut.end(), [](const Span& a, const Span& b) { return a.begin < b.begin; });
  std::string reduced;
  size_t last = 0;
  for (const auto& c : cut) {
    reduced.append(text.substr(last, c.begin - last));
    reduced.append("null");
    last = c.end;
  }
  reduced.append(text.substr(last));
  Json doc;
  try {
    doc = Json::parse(reduced);
  } catch (const Json::exception& e) {  // parse_error, and out_of_range for a number that overflows
    throw FormatError(source + ": malformed JSON: " + e.what());
  }
  Reader r(source);
  if (!doc.is_object()) r.fail("(root)", "expected an object");
  LargeValues large{scan, spans};
  auto impl = std::make_shared<TokenizerImpl>();
  impl->source = source;
  try {
    impl->normalizer = parse_normalizer(r, doc.value("normalizer", Json()), "normalizer");
    impl->pre_tokenizer =
        parse_pre_tokenizer(r, doc.value("pre_tokenizer", Json()), "pre_tokenizer");
    impl->model = parse_model(r, r.get(doc, "model", "(root)"), "model", large);
    impl->decoder = parse_decoder(r, doc.value("decoder", Json()), "decoder");
    std::vector<AddedToken> added;
    if (const Json* list = r.find(doc, "added_tokens")) {
      if (!list->is_array()) r.fail("added_tokens", "expected an array");
      for (size_t k = 0; k < list->size(); ++k) {
        const Json& e = (*list)[k];
        std::string where = "added_tokens[" + std::to_string(k) + "]";
        AddedToken t;
        t.id = r.token_id(r.get(e, "id", where), where + ".id");
        t.content = r.str(e, "content", where);
        t.special = r.boolean_or(e, "special", where, false);
        t.lstrip = r.boolean_or(e, "lstrip", where, false);
        t.rstrip = r.boolean_or(e, "rstrip", where, false);
        t.single_word = r.boolean_or(e, "single_word", where, false);
        t.normalized = r.boolean_or(e, "normalized", where, !t.special);
        // As HF's AddedVocabulary: a token whose content the model's vocabulary already
        // holds takes the model's id, whatever id the file declares.
        if (auto model_id = impl->model->token_to_id(t.content)) t.id = *model_id;
        added.push_back(std::move(t));
      }
    }
    impl->added.build(std::move(added), impl->normalizer.get());
    impl->vocab_size = impl->model->vocab_size();
    if (impl->added.max_id() >= 0) {
      impl->vocab_size = std::max(impl->vocab_size, static_cast<size_t>(impl->added.max_id()) + 1);
    }
    impl->post_processor =
        parse_post_processor(r, doc.value("post_processor", Json()), "post_processor", *impl);
  } catch (const Json::exception& e) {
    throw FormatError(source + ": " + e.what());
  }
  return impl;
}

}  // namespace lmx::tokenizer::detail
