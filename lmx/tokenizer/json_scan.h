// A fast scanner for the two large values of a tokenizer.json: model.vocab and
// model.merges (internal).
//
// Why not nlohmann for everything: building its DOM for the 11 MB Qwen3 file takes
// ~450 ms of CPU here, and the load-time target is 100 ms. The scanner only finds
// value boundaries and reads flat {"token": id} / ["a b"] / [["a","b"]] /
// [["piece", score]] shapes; every other part of the file still goes through
// nlohmann (see docs/tokenizer.md).
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>

namespace lmx::tokenizer::detail {

class JsonScanner {
 public:
  // `what` names the file in errors.
  JsonScanner(std::string_view text, std::string what) : text_(text), what_(std::move(what)) {}

  size_t skip_ws(size_t pos) const;
  char at(size_t pos) const { return pos < text_.size() ? text_[pos] : '\0'; }
  // Containers nested deeper than this are refused (FormatError naming the file):
  // the scanner recurses once per level, and find_model_spans() skips every
  // top-level value, so this bounds the nesting of the whole document before
  // nlohmann and the recursive normalizer / pre-tokenizer / decoder parsers see it.
  static constexpr int kMaxDepth = 128;

  // End of the value starting at pos (after skipping whitespace).
  size_t skip_value(size_t pos) const;
  // Reads the string starting at text[pos] == '"' into out; returns the position after it.
  size_t read_string(size_t pos, std::string& out) const;

  // Finds [begin, end) of model.vocab and model.merges (npos when absent).
  struct ModelSpans {
    size_t vocab_begin = std::string_view::npos, vocab_end = 0;
    size_t merges_begin = std::string_view::npos, merges_end = 0;
  };
  ModelSpans find_model_spans() const;

  // {"token": id, ...}: calls on_entry(token, id) for each entry.
  void read_vocab_object(size_t begin,
                         const std::function<void(std::string&&, int64_t)>& on_entry) const;
  // [["piece", score], ...]
  void read_scored_vocab(size_t begin,
                         const std::function<void(std::string&&, double)>& on_entry) const;
  // ["a b", ...] or [["a", "b"], ...]: calls on_merge(a, b, index). For the string
  // form, `b` is empty and `a` holds the whole "a b" string (the caller splits it).
  void read_merges(size_t begin,
                   const std::function<void(std::string&, std::string&, size_t)>& on_merge) const;

  [[noreturn]] void fail(size_t pos, const std::string& msg) const;

 private:
  int64_t read_integer(size_t& pos) const;
  double read_number(size_t& pos) const;
  size_t expect(size_t pos, char c) const;
  size_t skip_value(size_t pos, int depth) const;

  std::string_view text_;
  std::string what_;
};

}  // namespace lmx::tokenizer::detail
