// Normalizers of the tokenizer.json pipeline (internal).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "lmx/tokenizer/components.h"
#include "lmx/tokenizer/regex.h"
#include "lmx/tokenizer/unicode.h"

namespace lmx::tokenizer::detail {

class UnicodeNormalizer final : public Normalizer {
 public:
  explicit UnicodeNormalizer(NormalForm form) : form_(form) {}
  void normalize(std::string& text) const override;

 private:
  NormalForm form_;
};

class LowercaseNormalizer final : public Normalizer {
 public:
  void normalize(std::string& text) const override;
};

class StripNormalizer final : public Normalizer {
 public:
  StripNormalizer(bool left, bool right) : left_(left), right_(right) {}
  void normalize(std::string& text) const override;

 private:
  bool left_, right_;
};

class StripAccentsNormalizer final : public Normalizer {
 public:
  void normalize(std::string& text) const override;
};

class ReplaceNormalizer final : public Normalizer {
 public:
  ReplaceNormalizer(Pattern pattern, std::string content)
      : pattern_(std::move(pattern)), content_(std::move(content)) {}
  void normalize(std::string& text) const override;

 private:
  Pattern pattern_;
  std::string content_;
};

class PrependNormalizer final : public Normalizer {
 public:
  explicit PrependNormalizer(std::string prepend) : prepend_(std::move(prepend)) {}
  void normalize(std::string& text) const override;

 private:
  std::string prepend_;
};

class BertNormalizer final : public Normalizer {
 public:
  BertNormalizer(bool clean_text, bool handle_chinese_chars, bool strip_accents, bool lowercase)
      : clean_text_(clean_text),
        handle_chinese_chars_(handle_chinese_chars),
        strip_accents_(strip_accents),
        lowercase_(lowercase) {}
  void normalize(std::string& text) const override;

 private:
  bool clean_text_, handle_chinese_chars_, strip_accents_, lowercase_;
};

// Drops control characters and maps odd spaces to ' ' (HF "Nmt").
class NmtNormalizer final : public Normalizer {
 public:
  void normalize(std::string& text) const override;
};

// SentencePiece's precompiled character map: a double-array trie from UTF-8 byte
// sequences to replacement strings.
class CharsMap {
 public:
  // Throws FormatError naming `what` when the blob is malformed.
  CharsMap(std::string blob, const std::string& what);
  bool empty() const { return units_.empty(); }
  // Replacement of the shortest rule that is a prefix of `key` (HF semantics).
  bool shortest_prefix(std::string_view key, std::string_view& replacement) const;
  // Longest rule that is a prefix of `key`: its length (0 when none) and replacement
  // (sentencepiece semantics).
  size_t longest_prefix(std::string_view key, std::string_view& replacement) const;

 private:
  std::string_view replacement_at(uint32_t offset) const;
  std::vector<uint32_t> units_;
  std::string normalized_;
};

// The HF "Precompiled" normalizer: the charsmap applied per grapheme cluster.
class PrecompiledNormalizer final : public Normalizer {
 public:
  explicit PrecompiledNormalizer(std::shared_ptr<const CharsMap> map) : map_(std::move(map)) {}
  void normalize(std::string& text) const override;

 private:
  std::shared_ptr<const CharsMap> map_;
};

class SequenceNormalizer final : public Normalizer {
 public:
  explicit SequenceNormalizer(std::vector<std::unique_ptr<Normalizer>> items)
      : items_(std::move(items)) {}
  void normalize(std::string& text) const override {
    for (const auto& n : items_) n->normalize(text);
  }

 private:
  std::vector<std::unique_ptr<Normalizer>> items_;
};

}  // namespace lmx::tokenizer::detail
