#include "lmx/tokenizer/decoders.h"

#include "lmx/tokenizer/unicode.h"

namespace lmx::tokenizer::detail {

namespace {
void replace_all(std::string& s, std::string_view from, std::string_view to) {
  if (s.find(from) == std::string::npos) return;
  std::string out;
  out.reserve(s.size());
  size_t last = 0, pos;
  while ((pos = s.find(from, last)) != std::string::npos) {
    out.append(s, last, pos - last);
    out.append(to);
    last = pos + from.size();
  }
  out.append(s, last);
  s = std::move(out);
}

// Parses "<0xAB>"; -1 when the token is not a byte token.
int parse_byte_token(std::string_view t) {
  if (t.size() != 6 || t.substr(0, 3) != "<0x" || t[5] != '>') return -1;
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  int hi = hex(t[3]), lo = hex(t[4]);
  return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}
}  // namespace

std::string cleanup_tokenization(std::string text) {
  replace_all(text, " .", ".");
  replace_all(text, " ?", "?");
  replace_all(text, " !", "!");
  replace_all(text, " ,", ",");
  replace_all(text, " ' ", "'");
  replace_all(text, " n't", "n't");
  replace_all(text, " 'm", "'m");
  replace_all(text, " 's", "'s");
  replace_all(text, " 've", "'ve");
  replace_all(text, " 're", "'re");
  return text;
}

void ByteLevelDecoder::decode(std::vector<std::string>& tokens, bool sanitize) const {
  std::string bytes;
  std::string token_bytes;
  for (const auto& t : tokens) {
    token_bytes.clear();
    bool all = true;
    size_t i = 0;
    while (i < t.size()) {
      int32_t cp = next_codepoint(t, i);
      int b = cp < 0 ? -1 : byte_from_char(static_cast<char32_t>(cp));
      if (b < 0) {
        all = false;
        break;
      }
      token_bytes.push_back(static_cast<char>(b));
    }
    bytes += all ? token_bytes : t;  // a token outside the alphabet passes as is
  }
  tokens.assign(1, sanitize ? sanitize_utf8(bytes) : bytes);
}

void ByteFallbackDecoder::decode(std::vector<std::string>& tokens, bool sanitize) const {
  std::vector<std::string> out;
  out.reserve(tokens.size());
  std::string pending;
  auto flush = [&] {
    if (pending.empty()) return;
    if (!sanitize || is_valid_utf8(pending)) {
      out.push_back(pending);
    } else {
      for (size_t k = 0; k < pending.size(); ++k) out.emplace_back("\xEF\xBF\xBD");
    }
    pending.clear();
  };
  for (auto& t : tokens) {
    int b = parse_byte_token(t);
    if (b >= 0) {
      pending.push_back(static_cast<char>(b));
    } else {
      flush();
      out.push_back(std::move(t));
    }
  }
  flush();
  tokens = std::move(out);
}

void MetaspaceDecoder::decode_chain(std::vector<std::string>& tokens) const {
  for (size_t i = 0; i < tokens.size(); ++i) {
    // Token 0 loses its replacement characters when a prefix was added (HF behaviour).
    replace_all(tokens[i], replacement_, i == 0 && scheme_ != PrependScheme::kNever ? "" : " ");
  }
}

void WordPieceDecoder::decode_chain(std::vector<std::string>& tokens) const {
  for (size_t i = 0; i < tokens.size(); ++i) {
    auto& t = tokens[i];
    if (i != 0) {
      if (t.compare(0, prefix_.size(), prefix_) == 0) {
        t.erase(0, prefix_.size());
      } else {
        t = " " + t;  // (insert(0, ...) trips GCC 12's -Wrestrict false positive)
      }
    }
    if (cleanup_) t = cleanup_tokenization(std::move(t));
  }
}

void FuseDecoder::decode_chain(std::vector<std::string>& tokens) const {
  std::string all;
  for (const auto& t : tokens) all += t;
  tokens.assign(1, std::move(all));
}

void ReplaceDecoder::decode_chain(std::vector<std::string>& tokens) const {
  for (auto& t : tokens) t = pattern_.replace_all(t, content_);
}

void StripDecoder::decode_chain(std::vector<std::string>& tokens) const {
  if (content_.empty()) return;
  for (auto& t : tokens) {
    size_t begin = 0;
    for (size_t k = 0; k < start_ && t.compare(begin, content_.size(), content_) == 0; ++k) {
      begin += content_.size();
    }
    size_t end = t.size();
    for (size_t k = 0; k < stop_ && end >= begin + content_.size() &&
                       t.compare(end - content_.size(), content_.size(), content_) == 0;
         ++k) {
      end -= content_.size();
    }
    t = t.substr(begin, end - begin);
  }
}

void CtcDecoder::decode_chain(std::vector<std::string>& tokens) const {
  std::vector<std::string> out;
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (i > 0 && tokens[i] == tokens[i - 1]) continue;
    if (tokens[i] == pad_) continue;
    std::string t = tokens[i];
    if (cleanup_) {
      t = cleanup_tokenization(std::move(t));
      replace_all(t, delimiter_, " ");
    }
    out.push_back(std::move(t));
  }
  tokens = std::move(out);
}

void BpeSuffixDecoder::decode_chain(std::vector<std::string>& tokens) const {
  for (size_t i = 0; i < tokens.size(); ++i) {
    replace_all(tokens[i], suffix_, i + 1 == tokens.size() ? "" : " ");
  }
}

}  // namespace lmx::tokenizer::detail
