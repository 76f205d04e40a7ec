// The assembled pipeline behind lmx::tokenizer::Tokenizer (internal).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "lmx/tokenizer/added_vocabulary.h"
#include "lmx/tokenizer/components.h"
#include "lmx/tokenizer/tokenizer.h"

namespace lmx::tokenizer::detail {

class TokenizerImpl {
 public:
  std::string source;  // file name for messages
  std::unique_ptr<Normalizer> normalizer;
  std::unique_ptr<PreTokenizer> pre_tokenizer;
  std::unique_ptr<Model> model;
  std::unique_ptr<PostProcessor> post_processor;
  std::unique_ptr<Decoder> decoder;
  AddedVocabulary added;
  TokenizerConfig config;
  std::optional<int32_t> bos_id, eos_id, unk_id, pad_id;
  size_t vocab_size = 0;

  // Call after every stage and the config are set: resolves special ids, vocab size.
  void finalize();

  // Ids of one sequence, before post-processing. `text` must be valid UTF-8.
  void encode_sequence(std::string_view text, std::vector<int32_t>& ids) const;
  Sequence encode_to_sequence(std::string_view text) const;
  std::string decode(std::span<const int32_t> ids, bool skip_special_tokens, bool clean_up) const;
  std::string token_text(int32_t id) const;  // "" when none
  std::vector<std::string> token_bytes() const;  // see Tokenizer::token_bytes
};

// Builders (one file each).
std::shared_ptr<TokenizerImpl> load_tokenizer_json(std::string_view json,
                                                   const std::string& source);
std::shared_ptr<TokenizerImpl> load_sentencepiece(std::string_view data, const std::string& source);
std::shared_ptr<TokenizerImpl> load_tiktoken(std::string_view data, const std::string& source);
// Parses tokenizer_config.json text (and optionally special_tokens_map.json text).
TokenizerConfig parse_tokenizer_config(std::string_view json, const std::string& source);
// chat_template.json: {"chat_template": "..."}.
std::string parse_chat_template_json(std::string_view json, const std::string& source);
void merge_special_tokens_map(TokenizerConfig& config,
                              std::string_view json,
                              const std::string& source);
std::string read_file(const std::filesystem::path& path);

}  // namespace lmx::tokenizer::detail
