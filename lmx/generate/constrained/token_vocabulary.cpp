#include "lmx/generate/constrained/token_vocabulary.h"

#include <algorithm>

namespace lmx::generate::constrained {

namespace {

// Characters of s when it is whole UTF-8 characters with no '"', '\\' or control byte
// (what a JSON string body takes as is); -1 otherwise.
int32_t plain_string_chars(const std::string& s) {
  int32_t chars = 0;
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<uint8_t>(s[i]);
    size_t len = 0;
    uint8_t lo = 0x80, hi = 0xBF;
    if (c < 0x80) {
      if (c < 0x20 || c == 0x7F || c == '"' || c == '\\') return -1;
      len = 1;
    } else if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3, lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4, lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
    } else {
      return -1;
    }
    if (i + len > s.size()) return -1;
    for (size_t k = 1; k < len; ++k) {
      const auto b = static_cast<uint8_t>(s[i + k]);
      if (b < lo || b > hi) return -1;
      lo = 0x80, hi = 0xBF;
    }
    i += len;
    ++chars;
  }
  return chars;
}

}  // namespace

void SortedTokens::build(const std::vector<std::string>& bytes, std::vector<int32_t> list) {
  std::sort(list.begin(), list.end(), [&](int32_t a, int32_t b) { return bytes[a] < bytes[b]; });
  ids = std::move(list);
  lcp.assign(ids.size(), 0);
  max_length = 0;
  for (size_t i = 0; i < ids.size(); ++i) {
    const std::string& t = bytes[ids[i]];
    max_length = std::max(max_length, t.size());
    if (i == 0) continue;
    const std::string& p = bytes[ids[i - 1]];
    const size_t n = std::min(p.size(), t.size());
    uint32_t k = 0;
    while (k < n && p[k] == t[k]) ++k;
    lcp[i] = k;
  }
}

TokenVocabulary::TokenVocabulary(std::vector<std::string> bytes, std::set<int32_t> eos_ids)
    : bytes_(std::move(bytes)), eos_ids_(std::move(eos_ids)) {
  plain_chars_.assign(bytes_.size(), -1);
  std::vector<int32_t> all, non_plain;
  for (size_t id = 0; id < bytes_.size(); ++id) {
    if (bytes_[id].empty() || eos_ids_.count(static_cast<int32_t>(id))) continue;
    all.push_back(static_cast<int32_t>(id));
    plain_chars_[id] = plain_string_chars(bytes_[id]);
    if (plain_chars_[id] < 0) non_plain.push_back(static_cast<int32_t>(id));
  }
  all_.build(bytes_, std::move(all));
  non_plain_.build(bytes_, std::move(non_plain));
}

}  // namespace lmx::generate::constrained
