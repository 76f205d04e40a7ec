// Pre-tokenizers of the tokenizer.json pipeline (internal).
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "lmx/tokenizer/components.h"
#include "lmx/tokenizer/regex.h"

namespace lmx::tokenizer::detail {

enum class SplitBehavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

// Ranges covering a piece, each flagged as a match of the split pattern or not.
struct MatchRange {
  size_t start, end;
  bool is_match;
};

// Splits `piece` at the given ranges according to `behavior`, appending to `out`.
void split_by_ranges(const Piece& piece,
                     const std::vector<MatchRange>& ranges,
                     SplitBehavior behavior,
                     std::vector<Piece>& out);

// The pre-tokenizers below rewrite every piece that is not an added token.
class SplitPreTokenizer final : public PreTokenizer {
 public:
  SplitPreTokenizer(Pattern pattern, SplitBehavior behavior, bool invert)
      : pattern_(std::move(pattern)), behavior_(behavior), invert_(invert) {}
  void pre_tokenize(std::vector<Piece>& pieces) const override;

 private:
  Pattern pattern_;
  SplitBehavior behavior_;
  bool invert_;
};

// Splits on characters for which `predicate` holds.
class CharSplitPreTokenizer final : public PreTokenizer {
 public:
  CharSplitPreTokenizer(std::function<bool(char32_t)> predicate, SplitBehavior behavior)
      : predicate_(std::move(predicate)), behavior_(behavior) {}
  void pre_tokenize(std::vector<Piece>& pieces) const override;

 private:
  std::function<bool(char32_t)> predicate_;
  SplitBehavior behavior_;
};

class ByteLevelPreTokenizer final : public PreTokenizer {
 public:
  ByteLevelPreTokenizer(bool add_prefix_space, bool use_regex);
  void pre_tokenize(std::vector<Piece>& pieces) const override;

 private:
  bool add_prefix_space_;
  std::shared_ptr<const Regex> regex_;  // null when use_regex is false
};

enum class PrependScheme { kFirst, kAlways, kNever };

class MetaspacePreTokenizer final : public PreTokenizer {
 public:
  MetaspacePreTokenizer(std::string replacement, PrependScheme scheme, bool split)
      : replacement_(std::move(replacement)), scheme_(scheme), split_(split) {}
  void pre_tokenize(std::vector<Piece>& pieces) const override;

 private:
  std::string replacement_;
  PrependScheme scheme_;
  bool split_;
};

class SequencePreTokenizer final : public PreTokenizer {
 public:
  explicit SequencePreTokenizer(std::vector<std::unique_ptr<PreTokenizer>> items)
      : items_(std::move(items)) {}
  void pre_tokenize(std::vector<Piece>& pieces) const override {
    for (const auto& p : items_) p->pre_tokenize(pieces);
  }

 private:
  std::vector<std::unique_ptr<PreTokenizer>> items_;
};

// Factories for the pre-tokenizers that are splits in disguise.
std::unique_ptr<PreTokenizer> make_whitespace_pre_tokenizer();        // \w+|[^\w\s]+
std::unique_ptr<PreTokenizer> make_whitespace_split_pre_tokenizer();  // on whitespace
std::unique_ptr<PreTokenizer> make_bert_pre_tokenizer();
std::unique_ptr<PreTokenizer> make_punctuation_pre_tokenizer(SplitBehavior behavior);
std::unique_ptr<PreTokenizer> make_digits_pre_tokenizer(bool individual_digits);
// Splits where the Unicode script changes (HF `UnicodeScripts`, see docs/tokenizer.md).
std::unique_ptr<PreTokenizer> make_unicode_scripts_pre_tokenizer();

// The script UnicodeScripts assigns to c: Hiragana, Katakana and U+30FC count as Han,
// U+0020 as Any (joins either side).
uint8_t unicode_scripts_class(char32_t c);

// The GPT-2 split regex ByteLevel uses.
extern const char* const kGpt2Pattern;

}  // namespace lmx::tokenizer::detail
