// Decoders (internal): turn token strings back into text.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "lmx/tokenizer/components.h"
#include "lmx/tokenizer/pre_tokenizers.h"
#include "lmx/tokenizer/regex.h"

namespace lmx::tokenizer::detail {

class ByteLevelDecoder final : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens) const override { decode(tokens, true); }
  void decode_chain_raw(std::vector<std::string>& tokens) const override { decode(tokens, false); }

 private:
  void decode(std::vector<std::string>& tokens, bool sanitize) const;
};

class ByteFallbackDecoder final : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens) const override { decode(tokens, true); }
  void decode_chain_raw(std::vector<std::string>& tokens) const override { decode(tokens, false); }

 private:
  void decode(std::vector<std::string>& tokens, bool sanitize) const;
};

class MetaspaceDecoder final : public Decoder {
 public:
  MetaspaceDecoder(std::string replacement, PrependScheme scheme)
      : replacement_(std::move(replacement)), scheme_(scheme) {}
  void decode_chain(std::vector<std::string>& tokens) const override;

 private:
  std::string replacement_;
  PrependScheme scheme_;
};

class WordPieceDecoder final : public Decoder {
 public:
  WordPieceDecoder(std::string prefix, bool cleanup)
      : prefix_(std::move(prefix)), cleanup_(cleanup) {}
  void decode_chain(std::vector<std::string>& tokens) const override;

 private:
  std::string prefix_;
  bool cleanup_;
};

class FuseDecoder final : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens) const override;
};

class ReplaceDecoder final : public Decoder {
 public:
  ReplaceDecoder(Pattern pattern, std::string content)
      : pattern_(std::move(pattern)), content_(std::move(content)) {}
  void decode_chain(std::vector<std::string>& tokens) const override;

 private:
  Pattern pattern_;
  std::string content_;
};

class StripDecoder final : public Decoder {
 public:
  StripDecoder(std::string content, size_t start, size_t stop)
      : content_(std::move(content)), start_(start), stop_(stop) {}
  void decode_chain(std::vector<std::string>& tokens) const override;

 private:
  std::string content_;  // one character
  size_t start_, stop_;
};

class CtcDecoder final : public Decoder {
 public:
  CtcDecoder(std::string pad_token, std::string word_delimiter_token, bool cleanup)
      : pad_(std::move(pad_token)),
        delimiter_(std::move(word_delimiter_token)),
        cleanup_(cleanup) {}
  void decode_chain(std::vector<std::string>& tokens) const override;

 private:
  std::string pad_, delimiter_;
  bool cleanup_;
};

class BpeSuffixDecoder final : public Decoder {
 public:
  explicit BpeSuffixDecoder(std::string suffix) : suffix_(std::move(suffix)) {}
  void decode_chain(std::vector<std::string>& tokens) const override;

 private:
  std::string suffix_;
};

class SequenceDecoder final : public Decoder {
 public:
  explicit SequenceDecoder(std::vector<std::unique_ptr<Decoder>> items)
      : items_(std::move(items)) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (const auto& d : items_) d->decode_chain(tokens);
  }
  void decode_chain_raw(std::vector<std::string>& tokens) const override {
    for (const auto& d : items_) d->decode_chain_raw(tokens);
  }

 private:
  std::vector<std::unique_ptr<Decoder>> items_;
};

// transformers' clean_up_tokenization (" ." -> ".", " n't" -> "n't", ...).
std::string cleanup_tokenization(std::string text);

}  // namespace lmx::tokenizer::detail
