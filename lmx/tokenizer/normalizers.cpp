#include "lmx/tokenizer/normalizers.h"

#include <utf8proc.h>

#include <cstring>

#include "lmx/base/error.h"

namespace lmx::tokenizer::detail {

namespace {
// Calls fn(cp, start, end) for each code point of valid UTF-8 text.
template <typename Fn>
void for_each_char(std::string_view s, Fn&& fn) {
  size_t i = 0;
  while (i < s.size()) {
    size_t start = i;
    int32_t cp = next_codepoint(s, i);
    fn(cp < 0 ? kReplacementChar : static_cast<char32_t>(cp), start, i);
  }
}
}  // namespace

void UnicodeNormalizer::normalize(std::string& text) const {
  text = unicode_normalize(text, form_);
}

void LowercaseNormalizer::normalize(std::string& text) const { text = to_lower(text); }

void StripNormalizer::normalize(std::string& text) const {
  size_t begin = 0, end = text.size();
  if (left_) {
    size_t i = 0;
    while (i < end) {
      size_t start = i;
      int32_t cp = next_codepoint(text, i);
      if (cp < 0 || !is_whitespace(static_cast<char32_t>(cp))) {
        begin = start;
        break;
      }
      begin = i;
    }
  }
  if (right_) {
    // Walk forward remembering where the trailing whitespace run starts.
    size_t i = begin, run = end;
    bool in_run = false;
    while (i < end) {
      size_t start = i;
      int32_t cp = next_codepoint(text, i);
      bool ws = cp >= 0 && is_whitespace(static_cast<char32_t>(cp));
      if (ws && !in_run) {
        run = start;
        in_run = true;
      } else if (!ws) {
        in_run = false;
      }
    }
    if (in_run) end = run;
  }
  text = text.substr(begin, end - begin);
}

void StripAccentsNormalizer::normalize(std::string& text) const {
  std::string out;
  out.reserve(text.size());
  for_each_char(text, [&](char32_t cp, size_t start, size_t end) {
    if (!is_nonspacing_mark(cp)) out.append(text, start, end - start);
  });
  text = std::move(out);
}

void ReplaceNormalizer::normalize(std::string& text) const {
  text = pattern_.replace_all(text, content_);
}

void PrependNormalizer::normalize(std::string& text) const {
  if (!text.empty()) text = prepend_ + text;
}

void BertNormalizer::normalize(std::string& text) const {
  if (clean_text_ || handle_chinese_chars_) {
    std::string out;
    out.reserve(text.size() + text.size() / 4);
    for_each_char(text, [&](char32_t cp, size_t start, size_t end) {
      if (clean_text_) {
        if (cp == 0 || cp == kReplacementChar || is_bert_control(cp)) return;
        if (is_bert_whitespace(cp)) {
          out.push_back(' ');
          return;
        }
      }
      if (handle_chinese_chars_ && is_chinese_char(cp)) {
        out.push_back(' ');
        out.append(text, start, end - start);
        out.push_back(' ');
        return;
      }
      out.append(text, start, end - start);
    });
    text = std::move(out);
  }
  if (strip_accents_) {
    text = unicode_normalize(text, NormalForm::kNFD);
    StripAccentsNormalizer().normalize(text);
  }
  if (lowercase_) text = to_lower(text);
}

void NmtNormalizer::normalize(std::string& text) const {
  std::string out;
  out.reserve(text.size());
  for_each_char(text, [&](char32_t cp, size_t start, size_t end) {
    if ((cp >= 0x01 && cp <= 0x08) || cp == 0x0B || (cp >= 0x0E && cp <= 0x1F) || cp == 0x7F ||
        cp == 0x8F || cp == 0x9F) {
      return;
    }
    if (cp == 0x09 || cp == 0x0A || cp == 0x0C || cp == 0x0D || cp == 0x1680 ||
        (cp >= 0x200B && cp <= 0x200F) || cp == 0x2028 || cp == 0x2029 || cp == 0x2581 ||
        cp == 0xFEFF || cp == 0xFFFD) {
      out.push_back(' ');
      return;
    }
    out.append(text, start, end - start);
  });
  text = std::move(out);
}

// ---- CharsMap ----------------------------------------------------------------

namespace {
inline uint32_t unit_offset(uint32_t u) { return (u >> 10) << ((u & (1u << 9)) >> 6); }
inline uint32_t unit_label(uint32_t u) { return u & ((1u << 31) | 0xFFu); }
inline bool unit_has_leaf(uint32_t u) { return ((u >> 8) & 1u) != 0; }
inline uint32_t unit_value(uint32_t u) { return u & ((1u << 31) - 1); }
}  // namespace

CharsMap::CharsMap(std::string blob, const std::string& what) {
  if (blob.empty()) return;
  if (blob.size() < 4) throw FormatError(what + ": precompiled charsmap shorter than its header");
  uint32_t trie_bytes;
  std::memcpy(&trie_bytes, blob.data(), 4);
  if (trie_bytes % 4 != 0 || trie_bytes > blob.size() - 4) {
    throw FormatError(what + ": precompiled charsmap trie size " + std::to_string(trie_bytes) +
                      " does not fit the " + std::to_string(blob.size()) + "-byte blob");
  }
  units_.resize(trie_bytes / 4);
  std::memcpy(units_.data(), blob.data() + 4, trie_bytes);
  normalized_ = blob.substr(4 + trie_bytes);
  if (units_.empty()) throw FormatError(what + ": precompiled charsmap has an empty trie");
}

std::string_view CharsMap::replacement_at(uint32_t offset) const {
  if (offset >= normalized_.size()) return {};
  size_t end = normalized_.find('\0', offset);
  if (end == std::string::npos) end = normalized_.size();
  return std::string_view(normalized_).substr(offset, end - offset);
}

bool CharsMap::shortest_prefix(std::string_view key, std::string_view& replacement) const {
  if (units_.empty()) return false;
  size_t pos = unit_offset(units_[0]);
  for (char ch : key) {
    auto c = static_cast<unsigned char>(ch);
    if (c == 0) return false;
    pos ^= c;
    if (pos >= units_.size()) return false;
    uint32_t u = units_[pos];
    if (unit_label(u) != c) return false;
    pos ^= unit_offset(u);
    if (unit_has_leaf(u)) {
      if (pos >= units_.size()) return false;
      replacement = replacement_at(unit_value(units_[pos]));
      return true;
    }
  }
  return false;
}

size_t CharsMap::longest_prefix(std::string_view key, std::string_view& replacement) const {
  if (units_.empty()) return 0;
  size_t best = 0;
  size_t pos = unit_offset(units_[0]);
  for (size_t i = 0; i < key.size(); ++i) {
    auto c = static_cast<unsigned char>(key[i]);
    if (c == 0) break;
    pos ^= c;
    if (pos >= units_.size()) break;
    uint32_t u = units_[pos];
    if (unit_label(u) != c) break;
    pos ^= unit_offset(u);
    if (unit_has_leaf(u)) {
      if (pos >= units_.size()) break;
      replacement = replacement_at(unit_value(units_[pos]));
      best = i + 1;
    }
  }
  return best;
}

void PrecompiledNormalizer::normalize(std::string& text) const {
  if (map_->empty()) return;
  std::string out;
  out.reserve(text.size());
  // Walk grapheme clusters; a cluster shorter than 6 bytes is looked up whole, else
  // (or when that misses) char by char. This mirrors HF's spm_precompiled.
  size_t i = 0;
  utf8proc_int32_t state = 0;
  int32_t prev = -1;
  size_t cluster_start = 0;
  auto flush = [&](size_t start, size_t end) {
    std::string_view cluster(text.data() + start, end - start);
    std::string_view rep;
    if (cluster.size() < 6 && map_->shortest_prefix(cluster, rep)) {
      out.append(rep);
      return;
    }
    size_t j = 0;
    while (j < cluster.size()) {
      size_t s = j;
      next_codepoint(cluster, j);
      std::string_view ch = cluster.substr(s, j - s);
      if (map_->shortest_prefix(ch, rep)) {
        out.append(rep);
      } else {
        out.append(ch);
      }
    }
  };
  while (i < text.size()) {
    size_t start = i;
    int32_t cp = next_codepoint(text, i);
    if (cp < 0) cp = static_cast<int32_t>(kReplacementChar);
    if (prev >= 0 && utf8proc_grapheme_break_stateful(prev, cp, &state)) {
      flush(cluster_start, start);
      cluster_start = start;
    }
    prev = cp;
  }
  if (cluster_start < text.size()) flush(cluster_start, text.size());
  text = std::move(out);
}

}  // namespace lmx::tokenizer::detail
