// A compiled Unicode regex (PCRE2, UTF + UCP, JIT when available). Internal.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

namespace lmx::tokenizer::detail {

class Regex {
 public:
  // Throws lmx::FormatError naming `what` (file and field) when the pattern is invalid.
  Regex(std::string_view pattern, std::string_view what);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // Calls on_match(start, end) for every non-overlapping match, left to right.
  // Empty matches are skipped. `text` must be valid UTF-8.
  void find_all(std::string_view text, const std::function<void(size_t, size_t)>& on_match) const;

  const std::string& pattern() const { return pattern_; }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::string pattern_;
};

}  // namespace lmx::tokenizer::detail

namespace lmx::tokenizer::detail {

// The `pattern` of Split / Replace: a literal string or a regex.
class Pattern {
 public:
  static Pattern literal(std::string text);
  static Pattern regex(std::string_view pattern, std::string_view what);

  // Calls on_match(start, end) for every non-overlapping, non-empty match.
  void find_all(std::string_view text, const std::function<void(size_t, size_t)>& on_match) const;
  // Replaces every match with `content`.
  std::string replace_all(std::string_view text, std::string_view content) const;

 private:
  std::string literal_;
  std::shared_ptr<const Regex> regex_;
};

}  // namespace lmx::tokenizer::detail
