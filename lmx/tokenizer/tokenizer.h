// lmx tokenizers: Hugging Face tokenizer.json pipelines, SentencePiece and tiktoken
// models, behind one Tokenizer value type. Depends on no tensor code.
//
//   auto tok = lmx::tokenizer::Tokenizer::from_folder("models/Qwen3-0.6B");
//   std::vector<int32_t> ids = tok.encode("Hello world");
//   std::string text = tok.decode(ids, /*skip_special_tokens=*/true);
//
// Input text is UTF-8. Invalid UTF-8 is not an error: each maximal invalid subpart is
// replaced with U+FFFD before tokenizing (what Python's bytes.decode(errors="replace")
// gives the HF tokenizers, which accept only valid strings). `encode_strict` throws
// lmx::InvalidArgument instead.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace lmx::tokenizer {

namespace detail {
class TokenizerImpl;
}

// What tokenizer_config.json (or special_tokens_map.json) says beyond the pipeline.
struct TokenizerConfig {
  std::optional<std::string> bos_token, eos_token, unk_token, pad_token;
  std::optional<std::string> sep_token, cls_token, mask_token;
  std::vector<std::string> additional_special_tokens;
  std::optional<bool> add_bos_token, add_eos_token;
  // The default chat template ("" when none), raw Jinja text for the chat layer, and
  // every named template in file order (a list-form chat_template, or
  // chat_template.jinja / chat_template.json beside the config).
  std::string chat_template;
  std::vector<std::pair<std::string, std::string>> named_chat_templates;
  std::optional<size_t> model_max_length;
  bool clean_up_tokenization_spaces = false;
  std::string tokenizer_class;
  std::string padding_side = "right";
  std::string truncation_side = "right";
};

// One encoded sequence with its masks (all the same length).
struct Encoding {
  std::vector<int32_t> ids;
  std::vector<int32_t> type_ids;
  std::vector<uint8_t> attention_mask;
  std::vector<uint8_t> special_tokens_mask;
};

enum class Side { kLeft, kRight };

struct BatchOptions {
  bool add_special_tokens = true;
  // Truncate each sequence to at most this many ids (special tokens included).
  std::optional<size_t> max_length;
  Side truncation_side = Side::kRight;
  // Pad to the longest sequence (or to max_length when pad_to_max_length).
  bool pad = true;
  bool pad_to_max_length = false;
  size_t pad_to_multiple_of = 0;
  Side padding_side = Side::kRight;
  std::optional<int32_t> pad_id;  // default: the tokenizer's pad id, else 0
};

// Rows of equal length; attention_mask is 1 on real tokens, 0 on padding.
struct BatchEncoding {
  std::vector<std::vector<int32_t>> ids;
  std::vector<std::vector<int32_t>> type_ids;
  std::vector<std::vector<int32_t>> attention_mask;
};

class StreamingDetokenizer;

class Tokenizer {
 public:
  // A model folder or a folder with only tokenizer files: tokenizer.json (+
  // tokenizer_config.json, special_tokens_map.json, chat_template.jinja/json), else a
  // SentencePiece or tiktoken tokenizer.model. Throws IoError / FormatError naming the file.
  static Tokenizer from_folder(const std::filesystem::path& dir);
  // A tokenizer.json file, with an optional tokenizer_config.json.
  static Tokenizer from_tokenizer_json(const std::filesystem::path& file,
                                       const std::filesystem::path& config_file = {});
  // Only the configuration of a folder (tokenizer_config.json, special_tokens_map.json,
  // chat_template.jinja / chat_template.json), e.g. for the chat layer.
  static TokenizerConfig load_config(const std::filesystem::path& dir);
  // tokenizer.json text; `source` names it in errors.
  static Tokenizer from_json_text(std::string_view json,
                                  std::string_view config_json = {},
                                  std::string_view source = "tokenizer.json");
  // A SentencePiece ModelProto file (BPE or Unigram).
  static Tokenizer from_sentencepiece(const std::filesystem::path& file,
                                      const std::filesystem::path& config_file = {});
  // A tiktoken rank file ("base64 rank" lines), with Llama-3's pattern and specials.
  static Tokenizer from_tiktoken(const std::filesystem::path& file,
                                 const std::filesystem::path& config_file = {});
  // GPT-2 style vocab.json + merges.txt (byte-level BPE).
  static Tokenizer from_vocab_merges(const std::filesystem::path& vocab_json,
                                     const std::filesystem::path& merges_txt);
  // The tokenizer in a GGUF file's metadata (tokenizer.ggml.*): "llama" (SentencePiece
  // BPE), "gpt2" (byte-level BPE; pre-tokenizers gpt-2, mpt, gpt-neox, starcoder,
  // refact, falcon) and "bert" (WordPiece, uncased). Reads only the metadata.
  static Tokenizer from_gguf(const std::filesystem::path& file);
  // BERT style vocab.txt (WordPiece, BertNormalizer with `lowercase`).
  static Tokenizer from_wordpiece_vocab(const std::filesystem::path& vocab_txt, bool lowercase);

  std::vector<int32_t> encode(std::string_view text, bool add_special_tokens = true) const;
  // Like encode, but throws InvalidArgument on invalid UTF-8 instead of replacing it.
  std::vector<int32_t> encode_strict(std::string_view text, bool add_special_tokens = true) const;
  Encoding encode_full(std::string_view text, bool add_special_tokens = true) const;
  Encoding encode_pair(std::string_view first,
                       std::string_view second,
                       bool add_special_tokens = true) const;
  BatchEncoding encode_batch(std::span<const std::string> texts,
                             const BatchOptions& options = {}) const;
  // The token strings encode would produce (no special tokens added).
  std::vector<std::string> tokenize(std::string_view text) const;

  // Throws InvalidArgument for an id outside [0, vocab_size()). clean_up_tokenization_spaces
  // (" ." -> "." and the like, as transformers does) defaults to the config's value.
  std::string decode(std::span<const int32_t> ids,
                     bool skip_special_tokens = false,
                     std::optional<bool> clean_up_tokenization_spaces = std::nullopt) const;
  StreamingDetokenizer streaming_detokenizer(bool skip_special_tokens = false) const;

  // For every id in [0, vocab_size()): the bytes the token adds to the decoded text in
  // the middle of a sequence (a SentencePiece "▁x" gives " x"; a byte token or a
  // byte-level piece of a character gives its raw bytes, not valid UTF-8 alone). Special
  // tokens give "" (they are not text); a non-special added token gives its content.
  // What constrained decoding walks to know which tokens a grammar allows.
  std::vector<std::string> token_bytes() const;

  std::optional<int32_t> token_to_id(std::string_view token) const;
  std::optional<std::string> id_to_token(int32_t id) const;
  // One more than the largest id (model vocab and added tokens).
  size_t vocab_size() const;
  bool is_special(int32_t id) const;
  // Ids of the special tokens the config names (nullopt when absent or unknown).
  std::optional<int32_t> bos_id() const;
  std::optional<int32_t> eos_id() const;
  std::optional<int32_t> unk_id() const;
  std::optional<int32_t> pad_id() const;
  // Every special (added) token: (content, id), in id order.
  std::vector<std::pair<std::string, int32_t>> special_tokens() const;
  const TokenizerConfig& config() const;
  // Number of special tokens encode adds around one sequence.
  size_t num_special_tokens_to_add(bool pair = false) const;

  // Internal: used by tests to check BPE stays near-linear (merge candidates examined).
  uint64_t debug_model_work() const;

  // Internal: the loaders build the pipeline and wrap it.
  explicit Tokenizer(std::shared_ptr<const detail::TokenizerImpl> impl) : impl_(std::move(impl)) {}

 private:
  std::shared_ptr<const detail::TokenizerImpl> impl_;
};

// Turns ids, given one at a time, into text that is final: never half a UTF-8
// character, SentencePiece's leading space and byte-fallback runs resolved. The
// concatenation of everything add() and finish() return equals
// decode(all ids, skip_special_tokens, /*clean_up_tokenization_spaces=*/false).
class StreamingDetokenizer {
 public:
  StreamingDetokenizer(Tokenizer tokenizer, bool skip_special_tokens);
  // Returns the text that became final with this id (often empty).
  std::string add(int32_t id);
  // Returns whatever is still held back (an incomplete character decodes as U+FFFD).
  std::string finish();
  void reset();
  const std::vector<int32_t>& ids() const { return ids_; }

 private:
  std::string decode_range(size_t begin, size_t end) const;
  Tokenizer tokenizer_;
  bool skip_special_tokens_;
  std::vector<int32_t> ids_;
  size_t prefix_ = 0;  // ids before this are behind us
  size_t read_ = 0;    // text of ids [prefix_, read_) was already emitted
};

}  // namespace lmx::tokenizer
