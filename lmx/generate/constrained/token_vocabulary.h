// One tokenizer's vocabulary as constrained decoding walks it (internal): every token's
// bytes, sorted so that tokens sharing a prefix are neighbours (the walk feeds a shared
// prefix once and skips every token below a rejected one), and per token the characters
// it adds inside a JSON string when it is plain string content (the fast path).
#pragma once

#include <cstdint>
#include <set>
#include <string>
#include <vector>

namespace lmx::generate::constrained {

struct SortedTokens {
  std::vector<int32_t> ids;   // by bytes, lexicographically
  std::vector<uint32_t> lcp;  // lcp[i]: common prefix length of tokens i-1 and i (lcp[0] = 0)
  size_t max_length = 0;
  void build(const std::vector<std::string>& bytes, std::vector<int32_t> ids);
};

class TokenVocabulary {
 public:
  // bytes[id]: what the token adds to the text ("" for special tokens: never allowed,
  // except the EOS ids when the value is complete).
  TokenVocabulary(std::vector<std::string> bytes, std::set<int32_t> eos_ids);

  size_t size() const { return bytes_.size(); }
  const std::string& bytes(int32_t id) const { return bytes_[static_cast<size_t>(id)]; }
  const std::set<int32_t>& eos_ids() const { return eos_ids_; }
  const SortedTokens& all() const { return all_; }
  // Tokens that are not plain string content (quotes, backslashes, control bytes,
  // pieces of characters).
  const SortedTokens& non_plain() const { return non_plain_; }
  // Characters a plain token adds to a string; -1 when it is not plain.
  int32_t plain_chars(int32_t id) const { return plain_chars_[static_cast<size_t>(id)]; }

 private:
  std::vector<std::string> bytes_;
  std::set<int32_t> eos_ids_;
  SortedTokens all_, non_plain_;
  std::vector<int32_t> plain_chars_;
};

}  // namespace lmx::generate::constrained
