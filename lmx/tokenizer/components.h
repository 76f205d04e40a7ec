// The stages of the tokenizer pipeline (internal): normalizer, pre-tokenizer, model,
// post-processor, decoder, in the Hugging Face `tokenizers` sense.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace lmx::tokenizer::detail {

// One piece of the input on its way through the pipeline. `offset` is where the piece
// starts in the input (0 only for the first piece; Metaspace's "first" scheme reads it).
// Added tokens are pieces with `added_id` set; later stages leave them alone.
struct Piece {
  std::string text;
  size_t offset = 0;
  int32_t added_id = -1;
};

class Normalizer {
 public:
  virtual ~Normalizer() = default;
  virtual void normalize(std::string& text) const = 0;
};

class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  // Splits (and may rewrite) every piece whose added_id < 0.
  virtual void pre_tokenize(std::vector<Piece>& pieces) const = 0;
};

class Model {
 public:
  virtual ~Model() = default;
  // Appends the ids of one pre-tokenized word.
  virtual void tokenize(std::string_view word, std::vector<int32_t>& ids) const = 0;
  virtual std::optional<int32_t> token_to_id(std::string_view token) const = 0;
  // Empty view when the id has no token.
  virtual std::string_view id_to_token(int32_t id) const = 0;
  virtual size_t vocab_size() const = 0;  // max id + 1
};

// Ids with their type ids and special mask, as the post-processor sees them.
struct Sequence {
  std::vector<int32_t> ids;
  std::vector<int32_t> type_ids;
  std::vector<uint8_t> special;
};

class PostProcessor {
 public:
  virtual ~PostProcessor() = default;
  // Number of special tokens it adds to a single sequence (pair when is_pair).
  virtual size_t added_tokens(bool is_pair) const = 0;
  // Combines a (and b when given) into the final sequence.
  virtual Sequence process(Sequence a, const Sequence* b, bool add_special_tokens) const = 0;
};

class Decoder {
 public:
  virtual ~Decoder() = default;
  // Rewrites the token strings; the caller concatenates the result.
  virtual void decode_chain(std::vector<std::string>& tokens) const = 0;
  // Like decode_chain, but bytes that do not form valid UTF-8 (a token holding part of a
  // character) stay as they are instead of becoming U+FFFD.
  virtual void decode_chain_raw(std::vector<std::string>& tokens) const { decode_chain(tokens); }
};

}  // namespace lmx::tokenizer::detail
