#include "lmx/tokenizer/tokenizer.h"

#include <algorithm>
#include <fstream>
#include <sstream>

#include "lmx/base/error.h"
#include "lmx/tokenizer/decoders.h"
#include "lmx/tokenizer/post_processors.h"
#include "lmx/tokenizer/tokenizer_impl.h"
#include "lmx/tokenizer/unicode.h"

namespace lmx::tokenizer {

namespace detail {

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw IoError("cannot open " + path.string());
  std::string data;
  in.seekg(0, std::ios::end);
  auto size = in.tellg();
  if (size < 0) throw IoError("cannot read " + path.string());
  data.resize(static_cast<size_t>(size));
  in.seekg(0);
  in.read(data.data(), size);
  if (!in) throw IoError("cannot read " + path.string());
  return data;
}

void TokenizerImpl::finalize() {
  // Special tokens the config names but the tokenizer does not list as added tokens
  // are added (transformers does the same on load), provided the vocab knows them.
  std::vector<AddedToken> tokens = added.tokens();
  auto ensure_special = [&](const std::optional<std::string>& content) {
    if (!content || content->empty()) return;
    if (added.find(*content)) return;
    for (const auto& t : tokens) {
      if (t.content == *content) return;
    }
    if (auto id = model->token_to_id(*content)) {
      tokens.push_back(AddedToken{*content, *id, true, false, false, false, false});
    }
  };
  ensure_special(config.bos_token);
  ensure_special(config.eos_token);
  ensure_special(config.unk_token);
  ensure_special(config.pad_token);
  ensure_special(config.sep_token);
  ensure_special(config.cls_token);
  ensure_special(config.mask_token);
  for (const auto& t : config.additional_special_tokens) ensure_special(t);
  if (tokens.size() != added.tokens().size()) added.build(std::move(tokens), normalizer.get());

  vocab_size = model->vocab_size();
  if (added.max_id() >= 0)
    vocab_size = std::max(vocab_size, static_cast<size_t>(added.max_id()) + 1);
  auto resolve = [&](const std::optional<std::string>& content) -> std::optional<int32_t> {
    if (!content) return std::nullopt;
    if (auto id = added.find(*content)) return id;
    return model->token_to_id(*content);
  };
  bos_id = resolve(config.bos_token);
  eos_id = resolve(config.eos_token);
  unk_id = resolve(config.unk_token);
  pad_id = resolve(config.pad_token);

  // transformers rebuilds the template of Llama/Gemma tokenizers from add_bos/add_eos.
  const std::string& cls = config.tokenizer_class;
  bool llama_like = cls.rfind("LlamaTokenizer", 0) == 0 || cls.rfind("GemmaTokenizer", 0) == 0 ||
                    cls.rfind("CodeLlamaTokenizer", 0) == 0;
  if (llama_like && (config.add_bos_token || config.add_eos_token)) {
    bool add_bos = config.add_bos_token.value_or(true);
    bool add_eos = config.add_eos_token.value_or(false);
    if ((add_bos && !bos_id) || (add_eos && !eos_id)) return;
    std::vector<TemplatePiece> single, pair;
    for (int seq = 0; seq < 2; ++seq) {
      if (add_bos) pair.push_back({false, 0, {*bos_id}, seq});
      pair.push_back({true, seq, {}, seq});
      if (add_eos) pair.push_back({false, 0, {*eos_id}, seq});
    }
    if (add_bos) single.push_back({false, 0, {*bos_id}, 0});
    single.push_back({true, 0, {}, 0});
    if (add_eos) single.push_back({false, 0, {*eos_id}, 0});
    post_processor = std::make_unique<TemplateProcessor>(std::move(single), std::move(pair));
  }
}

void TokenizerImpl::encode_sequence(std::string_view text, std::vector<int32_t>& ids) const {
  std::vector<Piece> pieces = added.split(text, normalizer.get());
  if (pre_tokenizer) pre_tokenizer->pre_tokenize(pieces);
  for (const auto& p : pieces) {
    if (p.added_id >= 0) {
      ids.push_back(p.added_id);
    } else {
      model->tokenize(p.text, ids);
    }
  }
}

Sequence TokenizerImpl::encode_to_sequence(std::string_view text) const {
  Sequence s;
  encode_sequence(text, s.ids);
  s.type_ids.assign(s.ids.size(), 0);
  s.special.assign(s.ids.size(), 0);
  for (size_t k = 0; k < s.ids.size(); ++k) {
    const AddedToken* t = added.find_id(s.ids[k]);
    if (t && t->special) s.special[k] = 1;
  }
  return s;
}

std::string TokenizerImpl::token_text(int32_t id) const {
  if (const AddedToken* t = added.find_id(id)) return t->content;
  return std::string(model->id_to_token(id));
}

std::vector<std::string> TokenizerImpl::token_bytes() const {
  // A token's text depends on its neighbours (SentencePiece drops the space of the first
  // token, WordPiece prefixes non-"##" tokens with one), so each token is decoded after
  // an anchor token and the anchor's own text is cut off.
  auto raw = [&](std::vector<std::string> tokens) {
    std::string text;
    if (decoder) {
      decoder->decode_chain_raw(tokens);
      for (const auto& t : tokens) text += t;
    } else {
      for (size_t k = 0; k < tokens.size(); ++k) text += (k ? " " : "") + tokens[k];
    }
    return text;
  };
  std::string anchor, anchor_text;
  for (size_t id = 0; id < vocab_size && anchor.empty(); ++id) {
    if (added.find_id(static_cast<int32_t>(id))) continue;
    std::string tok(model->id_to_token(static_cast<int32_t>(id)));
    if (tok.empty()) continue;
    std::string text = raw({tok});
    bool letters = !text.empty() && std::all_of(text.begin(), text.end(), [](char c) {
      return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
    });
    if (letters && raw({tok, tok}) == text + text) anchor = tok, anchor_text = text;
  }
  std::vector<std::string> out(vocab_size);
  for (size_t id = 0; id < vocab_size; ++id) {
    if (const AddedToken* t = added.find_id(static_cast<int32_t>(id))) {
      if (!t->special) out[id] = t->content;
      continue;
    }
    std::string tok(model->id_to_token(static_cast<int32_t>(id)));
    if (tok.empty()) continue;
    if (!anchor.empty()) {
      std::string text = raw({anchor, tok});
      if (text.compare(0, anchor_text.size(), anchor_text) == 0) {
        out[id] = text.substr(anchor_text.size());
        continue;
      }
    }
    out[id] = raw({tok});
  }
  return out;
}

std::string TokenizerImpl::decode(std::span<const int32_t> ids,
                                  bool skip_special_tokens,
                                  bool clean_up) const {
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (int32_t id : ids) {
    if (id < 0 || static_cast<size_t>(id) >= vocab_size) {
      throw InvalidArgument("decode: token id " + std::to_string(id) + " is outside [0, " +
                            std::to_string(vocab_size) + ") for " + source);
    }
    if (const AddedToken* t = added.find_id(id)) {
      if (skip_special_tokens && t->special) continue;
      tokens.push_back(t->content);
      continue;
    }
    std::string_view tok = model->id_to_token(id);
    if (!tok.empty()) tokens.emplace_back(tok);
  }
  std::string text;
  if (decoder) {
    decoder->decode_chain(tokens);
    for (const auto& t : tokens) text += t;
  } else {
    for (size_t k = 0; k < tokens.size(); ++k) {
      if (k) text += ' ';
      text += tokens[k];
    }
  }
  if (clean_up) text = cleanup_tokenization(std::move(text));
  return text;
}

}  // namespace detail

namespace {
std::string valid_text(std::string_view text) {
  return detail::is_valid_utf8(text) ? std::string(text) : detail::sanitize_utf8(text);
}
bool file_exists(const std::filesystem::path& p) {
  std::error_code ec;
  return std::filesystem::exists(p, ec);
}

// Loads tokenizer_config.json (+ special_tokens_map.json, chat_template.* files) from dir.
TokenizerConfig load_config_from_dir(const std::filesystem::path& dir,
                                     const std::filesystem::path& config_file) {
  TokenizerConfig config;
  auto cfg = config_file.empty() ? dir / "tokenizer_config.json" : config_file;
  if (!cfg.empty() && file_exists(cfg)) {
    config = detail::parse_tokenizer_config(detail::read_file(cfg), cfg.string());
  }
  if (!dir.empty()) {
    auto map = dir / "special_tokens_map.json";
    if (file_exists(map))
      detail::merge_special_tokens_map(config, detail::read_file(map), map.string());
    // Newer transformers write the template beside the config.
    auto jinja = dir / "chat_template.jinja";
    auto json = dir / "chat_template.json";
    if (config.chat_template.empty() && file_exists(jinja)) {
      config.chat_template = detail::read_file(jinja);
    } else if (config.chat_template.empty() && file_exists(json)) {
      config.chat_template =
          detail::parse_chat_template_json(detail::read_file(json), json.string());
    }
  }
  return config;
}

Tokenizer finish(std::shared_ptr<detail::TokenizerImpl> impl, TokenizerConfig config) {
  // The config's special tokens add to what the tokenizer file already declared.
  auto keep = [](std::optional<std::string>& dst, const std::optional<std::string>& src) {
    if (src) dst = src;
  };
  keep(impl->config.bos_token, config.bos_token);
  keep(impl->config.eos_token, config.eos_token);
  keep(impl->config.unk_token, config.unk_token);
  keep(impl->config.pad_token, config.pad_token);
  keep(impl->config.sep_token, config.sep_token);
  keep(impl->config.cls_token, config.cls_token);
  keep(impl->config.mask_token, config.mask_token);
  auto specials = impl->config;
  impl->config = std::move(config);
  impl->config.bos_token = specials.bos_token;
  impl->config.eos_token = specials.eos_token;
  impl->config.unk_token = specials.unk_token;
  impl->config.pad_token = specials.pad_token;
  impl->config.sep_token = specials.sep_token;
  impl->config.cls_token = specials.cls_token;
  impl->config.mask_token = specials.mask_token;
  impl->finalize();
  return Tokenizer(std::move(impl));
}
}  // namespace

TokenizerConfig Tokenizer::load_config(const std::filesystem::path& dir) {
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec)) {
    throw IoError("tokenizer folder " + dir.string() + " does not exist or is not a folder");
  }
  return load_config_from_dir(dir, dir / "tokenizer_config.json");
}

Tokenizer Tokenizer::from_json_text(std::string_view json,
                                    std::string_view config_json,
                                    std::string_view source) {
  auto impl = detail::load_tokenizer_json(json, std::string(source));
  TokenizerConfig config;
  if (!config_json.empty()) {
    config = detail::parse_tokenizer_config(config_json, std::string(source) + " config");
  }
  return finish(std::move(impl), std::move(config));
}

Tokenizer Tokenizer::from_tokenizer_json(const std::filesystem::path& file,
                                         const std::filesystem::path& config_file) {
  auto impl = detail::load_tokenizer_json(detail::read_file(file), file.string());
  auto dir = file.parent_path();
  return finish(
      std::move(impl),
      load_config_from_dir(dir, config_file.empty() ? dir / "tokenizer_config.json" : config_file));
}

Tokenizer Tokenizer::from_sentencepiece(const std::filesystem::path& file,
                                        const std::filesystem::path& config_file) {
  auto impl = detail::load_sentencepiece(detail::read_file(file), file.string());
  TokenizerConfig config;
  if (!config_file.empty()) {
    config = detail::parse_tokenizer_config(detail::read_file(config_file), config_file.string());
  }
  return finish(std::move(impl), std::move(config));
}

Tokenizer Tokenizer::from_tiktoken(const std::filesystem::path& file,
                                   const std::filesystem::path& config_file) {
  auto impl = detail::load_tiktoken(detail::read_file(file), file.string());
  TokenizerConfig config;
  if (!config_file.empty()) {
    config = detail::parse_tokenizer_config(detail::read_file(config_file), config_file.string());
  }
  return finish(std::move(impl), std::move(config));
}

Tokenizer Tokenizer::from_folder(const std::filesystem::path& dir) {
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec)) {
    throw IoError("tokenizer folder " + dir.string() + " does not exist or is not a folder");
  }
  auto json = dir / "tokenizer.json";
  auto cfg = dir / "tokenizer_config.json";
  if (file_exists(json)) {
    auto impl = detail::load_tokenizer_json(detail::read_file(json), json.string());
    return finish(std::move(impl), load_config_from_dir(dir, cfg));
  }
  auto model = dir / "tokenizer.model";
  if (file_exists(model)) {
    std::string data = detail::read_file(model);
    // tiktoken files are text lines "base64 rank"; SentencePiece files are protobuf.
    bool text = !data.empty();
    for (size_t k = 0; k < std::min<size_t>(data.size(), 256) && text; ++k) {
      auto c = static_cast<unsigned char>(data[k]);
      text = c == '\n' || c == '\r' || (c >= 0x20 && c < 0x7F);
    }
    auto impl = text ? detail::load_tiktoken(data, model.string())
                     : detail::load_sentencepiece(data, model.string());
    return finish(std::move(impl), load_config_from_dir(dir, cfg));
  }
  throw IoError("no tokenizer.json or tokenizer.model in " + dir.string());
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_special_tokens) const {
  return encode_full(text, add_special_tokens).ids;
}

std::vector<int32_t> Tokenizer::encode_strict(std::string_view text,
                                              bool add_special_tokens) const {
  if (!detail::is_valid_utf8(text)) {
    size_t i = 0, bad = 0;
    while (i < text.size()) {
      bad = i;
      if (detail::next_codepoint(text, i) < 0) break;
    }
    throw InvalidArgument("encode: input is not valid UTF-8 (invalid sequence at byte " +
                          std::to_string(bad) + ")");
  }
  return encode(text, add_special_tokens);
}

namespace {
Encoding to_encoding(detail::Sequence s) {
  Encoding e;
  e.attention_mask.assign(s.ids.size(), 1);
  e.ids = std::move(s.ids);
  e.type_ids = std::move(s.type_ids);
  e.special_tokens_mask = std::move(s.special);
  return e;
}
}  // namespace

Encoding Tokenizer::encode_full(std::string_view text, bool add_special_tokens) const {
  auto s = impl_->encode_to_sequence(valid_text(text));
  if (impl_->post_processor)
    s = impl_->post_processor->process(std::move(s), nullptr, add_special_tokens);
  return to_encoding(std::move(s));
}

Encoding Tokenizer::encode_pair(std::string_view first,
                                std::string_view second,
                                bool add_special_tokens) const {
  auto a = impl_->encode_to_sequence(valid_text(first));
  auto b = impl_->encode_to_sequence(valid_text(second));
  for (auto& t : b.type_ids) t = 1;
  detail::Sequence s;
  if (impl_->post_processor) {
    s = impl_->post_processor->process(std::move(a), &b, add_special_tokens);
  } else {
    s = std::move(a);
    s.ids.insert(s.ids.end(), b.ids.begin(), b.ids.end());
    s.type_ids.insert(s.type_ids.end(), b.type_ids.begin(), b.type_ids.end());
    s.special.insert(s.special.end(), b.special.begin(), b.special.end());
  }
  return to_encoding(std::move(s));
}

size_t Tokenizer::num_special_tokens_to_add(bool pair) const {
  return impl_->post_processor ? impl_->post_processor->added_tokens(pair) : 0;
}

BatchEncoding Tokenizer::encode_batch(std::span<const std::string> texts,
                                      const BatchOptions& options) const {
  BatchEncoding out;
  size_t longest = 0;
  const size_t specials = options.add_special_tokens ? num_special_tokens_to_add(false) : 0;
  for (const auto& text : texts) {
    auto s = impl_->encode_to_sequence(valid_text(text));
    if (options.max_length) {
      size_t budget = *options.max_length > specials ? *options.max_length - specials : 0;
      if (s.ids.size() > budget) {
        size_t drop = s.ids.size() - budget;
        auto cut = [&](auto& v) {
          if (options.truncation_side == Side::kRight) {
            v.resize(budget);
          } else {
            v.erase(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(drop));
          }
        };
        cut(s.ids);
        cut(s.type_ids);
        cut(s.special);
      }
    }
    if (impl_->post_processor) {
      s = impl_->post_processor->process(std::move(s), nullptr, options.add_special_tokens);
    }
    if (options.max_length && s.ids.size() > *options.max_length) {
      s.ids.resize(*options.max_length);  // specials alone exceed the budget
      s.type_ids.resize(*options.max_length);
    }
    longest = std::max(longest, s.ids.size());
    out.attention_mask.emplace_back(s.ids.size(), 1);
    out.ids.push_back(std::move(s.ids));
    out.type_ids.push_back(std::move(s.type_ids));
  }
  if (!options.pad) return out;
  size_t target = longest;
  if (options.pad_to_max_length && options.max_length) target = *options.max_length;
  if (options.pad_to_multiple_of > 0) {
    size_t m = options.pad_to_multiple_of;
    target = (target + m - 1) / m * m;
  }
  int32_t pad = options.pad_id ? *options.pad_id : impl_->pad_id.value_or(0);
  for (size_t r = 0; r < out.ids.size(); ++r) {
    size_t missing = target > out.ids[r].size() ? target - out.ids[r].size() : 0;
    if (missing == 0) continue;
    auto pad_row = [&](auto& row, int32_t value) {
      if (options.padding_side == Side::kRight) {
        row.insert(row.end(), missing, value);
      } else {
        row.insert(row.begin(), missing, value);
      }
    };
    pad_row(out.ids[r], pad);
    pad_row(out.type_ids[r], 0);
    pad_row(out.attention_mask[r], 0);
  }
  return out;
}

std::vector<std::string> Tokenizer::tokenize(std::string_view text) const {
  std::vector<int32_t> ids;
  impl_->encode_sequence(valid_text(text), ids);
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (int32_t id : ids) tokens.push_back(impl_->token_text(id));
  return tokens;
}

std::string Tokenizer::decode(std::span<const int32_t> ids,
                              bool skip_special_tokens,
                              std::optional<bool> clean_up_tokenization_spaces) const {
  return impl_->decode(
      ids, skip_special_tokens,
      clean_up_tokenization_spaces.value_or(impl_->config.clean_up_tokenization_spaces));
}

StreamingDetokenizer Tokenizer::streaming_detokenizer(bool skip_special_tokens) const {
  return StreamingDetokenizer(*this, skip_special_tokens);
}

std::optional<int32_t> Tokenizer::token_to_id(std::string_view token) const {
  if (auto id = impl_->added.find(token)) return id;
  return impl_->model->token_to_id(token);
}

std::vector<std::string> Tokenizer::token_bytes() const { return impl_->token_bytes(); }

std::optional<std::string> Tokenizer::id_to_token(int32_t id) const {
  if (id < 0 || static_cast<size_t>(id) >= impl_->vocab_size) return std::nullopt;
  std::string t = impl_->token_text(id);
  if (t.empty()) return std::nullopt;
  return t;
}

size_t Tokenizer::vocab_size() const { return impl_->vocab_size; }

bool Tokenizer::is_special(int32_t id) const {
  const auto* t = impl_->added.find_id(id);
  return t && t->special;
}

std::optional<int32_t> Tokenizer::bos_id() const { return impl_->bos_id; }
std::optional<int32_t> Tokenizer::eos_id() const { return impl_->eos_id; }
std::optional<int32_t> Tokenizer::unk_id() const { return impl_->unk_id; }
std::optional<int32_t> Tokenizer::pad_id() const { return impl_->pad_id; }

std::vector<std::pair<std::string, int32_t>> Tokenizer::special_tokens() const {
  std::vector<std::pair<std::string, int32_t>> out;
  for (const auto& t : impl_->added.tokens()) {
    if (t.special) out.emplace_back(t.content, t.id);
  }
  std::sort(out.begin(), out.end(),
            [](const auto& a, const auto& b) { return a.second < b.second; });
  return out;
}

const TokenizerConfig& Tokenizer::config() const { return impl_->config; }

uint64_t Tokenizer::debug_model_work() const {
  if (const auto* bpe = dynamic_cast<const detail::BpeModel*>(impl_->model.get())) {
    return bpe->work_done();
  }
  return 0;
}

}  // namespace lmx::tokenizer
