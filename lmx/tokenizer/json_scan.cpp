#include "lmx/tokenizer/json_scan.h"

#include <charconv>
#include <cstring>

#include "lmx/base/error.h"
#include "lmx/tokenizer/unicode.h"

namespace lmx::tokenizer::detail {

void JsonScanner::fail(size_t pos, const std::string& msg) const {
  throw FormatError(what_ + ": malformed JSON at byte " + std::to_string(pos) + ": " + msg);
}

size_t JsonScanner::skip_ws(size_t pos) const {
  while (pos < text_.size()) {
    char c = text_[pos];
    if (c != ' ' && c != '\n' && c != '\r' && c != '\t') break;
    ++pos;
  }
  return pos;
}

size_t JsonScanner::expect(size_t pos, char c) const {
  pos = skip_ws(pos);
  if (pos >= text_.size() || text_[pos] != c) fail(pos, std::string("expected '") + c + "'");
  return pos + 1;
}

size_t JsonScanner::read_string(size_t pos, std::string& out) const {
  if (pos >= text_.size() || text_[pos] != '"') fail(pos, "expected a string");
  ++pos;
  out.clear();
  while (true) {
    // Copy the run up to the next quote or backslash in one go.
    size_t run = pos;
    while (run < text_.size() && text_[run] != '"' && text_[run] != '\\') {
      if (static_cast<unsigned char>(text_[run]) < 0x20) fail(run, "control character in string");
      ++run;
    }
    out.append(text_.data() + pos, run - pos);
    if (run >= text_.size()) fail(pos, "unterminated string");
    if (text_[run] == '"') return run + 1;
    // Escape sequence.
    pos = run + 1;
    if (pos >= text_.size()) fail(pos, "unterminated escape");
    char e = text_[pos++];
    switch (e) {
      case '"':
        out.push_back('"');
        break;
      case '\\':
        out.push_back('\\');
        break;
      case '/':
        out.push_back('/');
        break;
      case 'b':
        out.push_back('\b');
        break;
      case 'f':
        out.push_back('\f');
        break;
      case 'n':
        out.push_back('\n');
        break;
      case 'r':
        out.push_back('\r');
        break;
      case 't':
        out.push_back('\t');
        break;
      case 'u': {
        auto hex4 = [&](size_t p) -> uint32_t {
          if (p + 4 > text_.size()) fail(p, "truncated \\u escape");
          uint32_t v = 0;
          for (size_t k = 0; k < 4; ++k) {
            char h = text_[p + k];
            v <<= 4;
            if (h >= '0' && h <= '9') {
              v |= static_cast<uint32_t>(h - '0');
            } else if (h >= 'a' && h <= 'f') {
              v |= static_cast<uint32_t>(h - 'a' + 10);
            } else if (h >= 'A' && h <= 'F') {
              v |= static_cast<uint32_t>(h - 'A' + 10);
            } else {
              fail(p + k, "bad hex digit in \\u escape");
            }
          }
          return v;
        };
        uint32_t cp = hex4(pos);
        pos += 4;
        if (cp >= 0xD800 && cp <= 0xDBFF && pos + 6 <= text_.size() && text_[pos] == '\\' &&
            text_[pos + 1] == 'u') {
          uint32_t lo = hex4(pos + 2);
          if (lo >= 0xDC00 && lo <= 0xDFFF) {
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            pos += 6;
          }
        }
        append_utf8(out, cp);  // a lone surrogate becomes U+FFFD
        break;
      }
      default:
        fail(pos - 1, "invalid escape");
    }
  }
}

size_t JsonScanner::skip_value(size_t pos) const { return skip_value(pos, 0); }

size_t JsonScanner::skip_value(size_t pos, int depth) const {
  pos = skip_ws(pos);
  if (pos >= text_.size()) fail(pos, "expected a value");
  char c = text_[pos];
  if (c == '"') {
    ++pos;
    while (true) {
      const void* q = std::memchr(text_.data() + pos, '"', text_.size() - pos);
      if (!q) fail(pos, "unterminated string");
      size_t at = static_cast<const char*>(q) - text_.data();
      size_t bs = 0;
      while (at - bs > pos && text_[at - bs - 1] == '\\') ++bs;
      pos = at + 1;
      if (bs % 2 == 0) return pos;
    }
  }
  if (c == '{' || c == '[') {
    if (depth >= kMaxDepth) {
      fail(pos, "nesting deeper than " + std::to_string(kMaxDepth) + " levels");
    }
    char close = c == '{' ? '}' : ']';
    pos = skip_ws(pos + 1);
    if (pos < text_.size() && text_[pos] == close) return pos + 1;
    while (true) {
      if (c == '{') {
        pos = skip_ws(pos);
        pos = skip_value(pos, depth + 1);  // key
        pos = expect(pos, ':');
      }
      pos = skip_value(pos, depth + 1);
      pos = skip_ws(pos);
      if (pos >= text_.size()) fail(pos, "unterminated container");
      if (text_[pos] == ',') {
        ++pos;
        continue;
      }
      if (text_[pos] == close) return pos + 1;
      fail(pos, std::string("expected ',' or '") + close + "'");
    }
  }
  // Literal or number: up to the next delimiter.
  size_t start = pos;
  while (pos < text_.size() && text_[pos] != ',' && text_[pos] != '}' && text_[pos] != ']' &&
         text_[pos] != ' ' && text_[pos] != '\n' && text_[pos] != '\r' && text_[pos] != '\t') {
    ++pos;
  }
  if (pos == start) fail(pos, "expected a value");
  return pos;
}

JsonScanner::ModelSpans JsonScanner::find_model_spans() const {
  ModelSpans spans;
  size_t pos = expect(0, '{');
  std::string key;
  pos = skip_ws(pos);
  if (pos < text_.size() && text_[pos] == '}') return spans;
  while (true) {
    pos = read_string(skip_ws(pos), key);
    pos = expect(pos, ':');
    pos = skip_ws(pos);
    if (key == "model" && pos < text_.size() && text_[pos] == '{') {
      size_t p = skip_ws(pos + 1);
      std::string mkey;
      if (p < text_.size() && text_[p] == '}') {
        pos = p + 1;
      } else {
        while (true) {
          p = read_string(skip_ws(p), mkey);
          p = expect(p, ':');
          p = skip_ws(p);
          size_t end = skip_value(p);
          if (mkey == "vocab") {
            spans.vocab_begin = p;
            spans.vocab_end = end;
          } else if (mkey == "merges") {
            spans.merges_begin = p;
            spans.merges_end = end;
          }
          p = skip_ws(end);
          if (p < text_.size() && text_[p] == ',') {
            ++p;
            continue;
          }
          if (p < text_.size() && text_[p] == '}') break;
          fail(p, "expected ',' or '}' in model");
        }
        pos = p + 1;
      }
    } else {
      pos = skip_value(pos);
    }
    pos = skip_ws(pos);
    if (pos < text_.size() && text_[pos] == ',') {
      ++pos;
      continue;
    }
    if (pos < text_.size() && text_[pos] == '}') break;
    fail(pos, "expected ',' or '}'");
  }
  return spans;
}

int64_t JsonScanner::read_integer(size_t& pos) const {
  pos = skip_ws(pos);
  int64_t v = 0;
  auto [ptr, ec] = std::from_chars(text_.data() + pos, text_.data() + text_.size(), v);
  if (ec != std::errc()) fail(pos, "expected an integer");
  pos = static_cast<size_t>(ptr - text_.data());
  if (pos < text_.size() && (text_[pos] == '.' || text_[pos] == 'e' || text_[pos] == 'E')) {
    fail(pos, "expected an integer");
  }
  return v;
}

double JsonScanner::read_number(size_t& pos) const {
  pos = skip_ws(pos);
  double v = 0;
  auto [ptr, ec] = std::from_chars(text_.data() + pos, text_.data() + text_.size(), v);
  if (ec != std::errc()) fail(pos, "expected a number");
  pos = static_cast<size_t>(ptr - text_.data());
  return v;
}

void JsonScanner::read_vocab_object(
    size_t pos, const std::function<void(std::string&&, int64_t)>& on_entry) const {
  pos = expect(pos, '{');
  pos = skip_ws(pos);
  if (pos < text_.size() && text_[pos] == '}') return;
  std::string key;
  while (true) {
    pos = read_string(skip_ws(pos), key);
    pos = expect(pos, ':');
    int64_t id = read_integer(pos);
    on_entry(std::move(key), id);
    pos = skip_ws(pos);
    if (pos < text_.size() && text_[pos] == ',') {
      ++pos;
      continue;
    }
    if (pos < text_.size() && text_[pos] == '}') return;
    fail(pos, "expected ',' or '}' in model.vocab");
  }
}

void JsonScanner::read_scored_vocab(
    size_t pos, const std::function<void(std::string&&, double)>& on_entry) const {
  pos = expect(pos, '[');
  pos = skip_ws(pos);
  if (pos < text_.size() && text_[pos] == ']') return;
  std::string piece;
  while (true) {
    pos = expect(pos, '[');
    pos = read_string(skip_ws(pos), piece);
    pos = expect(pos, ',');
    double score = read_number(pos);
    pos = expect(pos, ']');
    on_entry(std::move(piece), score);
    pos = skip_ws(pos);
    if (pos < text_.size() && text_[pos] == ',') {
      ++pos;
      continue;
    }
    if (pos < text_.size() && text_[pos] == ']') return;
    fail(pos, "expected ',' or ']' in model.vocab");
  }
}

void JsonScanner::read_merges(
    size_t pos, const std::function<void(std::string&, std::string&, size_t)>& on_merge) const {
  pos = expect(pos, '[');
  pos = skip_ws(pos);
  if (pos < text_.size() && text_[pos] == ']') return;
  std::string a, b;
  for (size_t index = 0;; ++index) {
    pos = skip_ws(pos);
    if (pos < text_.size() && text_[pos] == '"') {
      pos = read_string(pos, a);
      b.clear();
    } else {
      pos = expect(pos, '[');
      pos = read_string(skip_ws(pos), a);
      pos = expect(pos, ',');
      pos = read_string(skip_ws(pos), b);
      pos = expect(pos, ']');
      if (b.empty()) fail(pos, "empty token in model.merges[" + std::to_string(index) + "]");
    }
    on_merge(a, b, index);
    pos = skip_ws(pos);
    if (pos < text_.size() && text_[pos] == ',') {
      ++pos;
      continue;
    }
    if (pos < text_.size() && text_[pos] == ']') return;
    fail(pos, "expected ',' or ']' in model.merges");
  }
}

}  // namespace lmx::tokenizer::detail
