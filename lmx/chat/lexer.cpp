#include "lmx/chat/lexer.h"

#include <charconv>
#include <cstdlib>

#include "lmx/chat/template_error.h"

namespace lmx::chat::detail {

namespace {

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_name_start(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || static_cast<unsigned char>(c) >= 0x80;
}
bool is_name_char(char c) { return is_name_start(c) || is_digit(c); }


class Lexer {
 public:
  explicit Lexer(std::string_view source) {
    src_.reserve(source.size());
    for (size_t i = 0; i < source.size(); ++i) {
      if (source[i] == '\r') {
        src_ += '\n';
        if (i + 1 < source.size() && source[i + 1] == '\n') ++i;
      } else {
        src_ += source[i];
      }
    }
    // keep_trailing_newline=False: one trailing newline is dropped.
    if (!src_.empty() && src_.back() == '\n') src_.pop_back();
  }

  std::vector<Token> run() {
    size_t pos = 0;
    const size_t n = src_.size();
    while (pos < n) {
      size_t start = find_tag(pos);
      if (start == std::string::npos) {
        emit_text(pos, n);
        break;
      }
      char kind = src_[start + 1];
      char sign = start + 2 < n && (src_[start + 2] == '-' || src_[start + 2] == '+') ? src_[start + 2] : 0;
      size_t body = start + 2 + (sign ? 1 : 0);
      size_t raw_end = 0;
      bool raw = kind == '%' && match_word_tag(body, "raw", &raw_end);
      // Text before the tag, with whitespace control applied.
      size_t text_end = start;
      if (sign == '-') {
        while (text_end > pos && is_space(src_[text_end - 1])) --text_end;
      } else if (sign != '+' && kind != '{') {
        text_end = lstrip(pos, start);
      }
      emit_text(pos, text_end);
      if (kind == '#') {
        pos = lex_comment(start, body);
      } else if (raw) {
        pos = lex_raw(start, raw_end);
      } else {
        pos = lex_tag(start, kind, body);
      }
    }
    tokens_.push_back(make(TokenType::End, "", n));
    return std::move(tokens_);
  }

 private:
  std::string src_;
  std::vector<Token> tokens_;
  size_t line_pos_ = 0;
  int line_ = 1;
  size_t line_start_ = 0;

  void position(size_t offset, int* line, int* column) {
    if (offset < line_pos_) {
      line_pos_ = 0;
      line_ = 1;
      line_start_ = 0;
    }
    for (; line_pos_ < offset && line_pos_ < src_.size(); ++line_pos_) {
      if (src_[line_pos_] == '\n') {
        ++line_;
        line_start_ = line_pos_ + 1;
      }
    }
    *line = line_;
    *column = static_cast<int>(offset - line_start_) + 1;
  }

  [[noreturn]] void fail(const std::string& message, size_t offset) {
    int line, column;
    position(offset, &line, &column);
    throw TemplateSyntaxError(message, line, column);
  }

  Token make(TokenType type, std::string value, size_t offset) {
    Token t;
    t.type = type;
    t.value = std::move(value);
    position(offset, &t.line, &t.column);
    return t;
  }

  size_t find_tag(size_t pos) const {
    while (true) {
      size_t p = src_.find('{', pos);
      if (p == std::string::npos || p + 1 >= src_.size()) return std::string::npos;
      char c = src_[p + 1];
      if (c == '{' || c == '%' || c == '#') return p;
      pos = p + 1;
    }
  }

  // lstrip_blocks: whitespace between the line start and a block/comment tag goes.
  size_t lstrip(size_t pos, size_t start) const {
    // Only the text since `pos` matters: never scan further back (linear lexing).
    size_t l_pos = start;
    while (l_pos > pos && src_[l_pos - 1] != '\n') --l_pos;
    bool line_starting = pos == 0 || src_[pos - 1] == '\n';
    if (l_pos == pos && !line_starting) return start;
    for (size_t i = l_pos; i < start; ++i)
      if (!is_space(src_[i])) return start;
    return l_pos;
  }

  void emit_text(size_t from, size_t to) {
    if (to > from) tokens_.push_back(make(TokenType::Text, src_.substr(from, to - from), from));
  }

  // Matches `\s*word\s*[-+]?%}` at p; sets *end past `%}`.
  bool match_word_tag(size_t p, std::string_view word, size_t* end) const {
    while (p < src_.size() && is_space(src_[p])) ++p;
    if (src_.compare(p, word.size(), word) != 0) return false;
    p += word.size();
    if (p < src_.size() && is_name_char(src_[p])) return false;
    while (p < src_.size() && is_space(src_[p])) ++p;
    if (p < src_.size() && (src_[p] == '-' || src_[p] == '+')) ++p;
    if (src_.compare(p, 2, "%}") != 0) return false;
    *end = p + 2;
    return true;
  }

  // After a block-like end marker at `close` ("%}" or "#}"): '-' strips all following
  // whitespace, '+' keeps it, otherwise trim_blocks removes one newline.
  size_t after_block_end(size_t close, size_t body_start, bool trim) const {
    size_t p = close + 2;
    char before = close > body_start ? src_[close - 1] : 0;
    if (before == '-') {
      while (p < src_.size() && is_space(src_[p])) ++p;
    } else if (before != '+' && trim && p < src_.size() && src_[p] == '\n') {
      ++p;
    }
    return p;
  }

  size_t lex_comment(size_t start, size_t body) {
    size_t close = src_.find("#}", body);
    if (close == std::string::npos) fail("Missing end of comment tag", start);
    return after_block_end(close, body, true);
  }

  size_t lex_raw(size_t start, size_t content) {
    if (src_[content - 3] == '-')
      while (content < src_.size() && is_space(src_[content])) ++content;
    size_t p = content;
    while (true) {
      size_t tag = src_.find("{%", p);
      if (tag == std::string::npos) fail("Missing end of raw directive", start);
      char sign = tag + 2 < src_.size() && (src_[tag + 2] == '-' || src_[tag + 2] == '+') ? src_[tag + 2] : 0;
      size_t end = 0;
      if (!match_word_tag(tag + 2 + (sign ? 1 : 0), "endraw", &end)) {
        p = tag + 2;
        continue;
      }
      size_t text_end = tag;
      if (sign == '-') {
        while (text_end > content && is_space(src_[text_end - 1])) --text_end;
      } else if (sign != '+') {
        text_end = lstrip(content, tag);
      }
      emit_text(content, text_end);
      return after_block_end(end - 2, tag + 2, true);
    }
  }

  size_t lex_tag(size_t start, char kind, size_t p) {
    bool block = kind == '%';
    tokens_.push_back(make(block ? TokenType::BlockBegin : TokenType::VarBegin, "", start));
    int depth = 0;
    const size_t n = src_.size();
    while (true) {
      while (p < n && is_space(src_[p])) ++p;
      if (p >= n) fail(block ? "unexpected end of template, expected end of block tag ('%}')"
                             : "unexpected end of template, expected end of print statement ('}}')",
                       p);
      char c = src_[p];
      if (depth == 0) {
        if (block) {
          if (src_.compare(p, 3, "-%}") == 0 || src_.compare(p, 3, "+%}") == 0) {
            tokens_.push_back(make(TokenType::BlockEnd, "", p));
            return after_block_end(p + 1, p, true);
          }
          if (src_.compare(p, 2, "%}") == 0) {
            tokens_.push_back(make(TokenType::BlockEnd, "", p));
            return after_block_end(p, p, true);
          }
        } else {
          if (src_.compare(p, 3, "-}}") == 0) {
            tokens_.push_back(make(TokenType::VarEnd, "", p));
            p += 3;
            while (p < n && is_space(src_[p])) ++p;
            return p;
          }
          if (src_.compare(p, 2, "}}") == 0) {
            tokens_.push_back(make(TokenType::VarEnd, "", p));
            return p + 2;
          }
        }
      }
      if (c == '\'' || c == '"') {
        p = lex_string(p);
      } else if (is_digit(c)) {
        p = lex_number(p);
      } else if (is_name_start(c)) {
        size_t e = p;
        while (e < n && is_name_char(src_[e])) ++e;
        tokens_.push_back(make(TokenType::Name, src_.substr(p, e - p), p));
        p = e;
      } else {
        static const char* kTwo[] = {"//", "**", "==", "!=", "<=", ">="};
        std::string op;
        for (const char* t : kTwo)
          if (src_.compare(p, 2, t) == 0) op = t;
        if (op.empty()) {
          if (std::string_view("+-*/%~<>=()[]{},.:|").find(c) == std::string_view::npos)
            fail(std::string("unexpected char '") + c + "'", p);
          op = std::string(1, c);
          if (c == '(' || c == '[' || c == '{') ++depth;
          if (c == ')' || c == ']' || c == '}') {
            if (depth == 0) fail(std::string("unexpected '") + c + "'", p);
            --depth;
          }
        }
        tokens_.push_back(make(TokenType::Op, op, p));
        p += op.size();
      }
    }
  }

  size_t lex_string(size_t p) {
    char quote = src_[p];
    size_t start = p++;
    std::string out;
    const size_t n = src_.size();
    while (true) {
      if (p >= n) fail("unterminated string literal", start);
      char c = src_[p];
      if (c == quote) break;
      if (c != '\\') {
        out += c;
        ++p;
        continue;
      }
      if (p + 1 >= n) fail("unterminated string literal", start);
      const size_t used = decode_escape(src_, p + 1, out);
      if (used == 0) fail("invalid escape in string literal", p);
      p += 1 + used;
    }
    tokens_.push_back(make(TokenType::String, std::move(out), start));
    return p + 1;
  }

  size_t lex_number(size_t p) {
    size_t start = p;
    const size_t n = src_.size();
    auto digits = [&](size_t q, auto pred) {
      while (q < n && (pred(src_[q]) || (src_[q] == '_' && q + 1 < n && pred(src_[q + 1])))) ++q;
      return q;
    };
    auto strip = [](std::string_view s) {
      std::string r;
      for (char c : s)
        if (c != '_') r += c;
      return r;
    };
    if (src_[p] == '0' && p + 1 < n && (src_[p + 1] == 'x' || src_[p + 1] == 'o' || src_[p + 1] == 'b')) {
      int base = src_[p + 1] == 'x' ? 16 : src_[p + 1] == 'o' ? 8 : 2;
      size_t e = digits(p + 2, [](char c) { return std::isxdigit(static_cast<unsigned char>(c)) != 0; });
      Token t = make(TokenType::Int, src_.substr(start, e - start), start);
      std::string d = strip(std::string_view(src_).substr(p + 2, e - p - 2));
      t.int_value = std::strtoll(d.c_str(), nullptr, base);
      tokens_.push_back(std::move(t));
      return e;
    }
    size_t e = digits(p, is_digit);
    bool is_float = false;
    if (e + 1 < n && src_[e] == '.' && is_digit(src_[e + 1])) {
      is_float = true;
      e = digits(e + 1, is_digit);
    }
    if (e < n && (src_[e] == 'e' || src_[e] == 'E')) {
      size_t q = e + 1;
      if (q < n && (src_[q] == '+' || src_[q] == '-')) ++q;
      if (q < n && is_digit(src_[q])) {
        is_float = true;
        e = digits(q, is_digit);
      }
    }
    std::string text = strip(std::string_view(src_).substr(start, e - start));
    Token t = make(is_float ? TokenType::Float : TokenType::Int, text, start);
    if (is_float) {
      t.float_value = std::strtod(text.c_str(), nullptr);
    } else {
      auto res = std::from_chars(text.data(), text.data() + text.size(), t.int_value);
      if (res.ec != std::errc()) fail("integer literal too large", start);
    }
    tokens_.push_back(std::move(t));
    return e;
  }
};

}  // namespace

std::vector<Token> tokenize(std::string_view source) { return Lexer(source).run(); }

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

size_t decode_escape(std::string_view s, size_t p, std::string& out) {
  const char e = s[p];
  switch (e) {
    case 'n': out += '\n'; return 1;
    case 't': out += '\t'; return 1;
    case 'r': out += '\r'; return 1;
    case '\\': out += '\\'; return 1;
    case '\'': out += '\''; return 1;
    case '"': out += '"'; return 1;
    case 'a': out += '\a'; return 1;
    case 'b': out += '\b'; return 1;
    case 'f': out += '\f'; return 1;
    case 'v': out += '\v'; return 1;
    case '\n': return 1;  // line continuation
    case 'x':
    case 'u':
    case 'U': {
      const size_t len = e == 'x' ? 2 : e == 'u' ? 4 : 8;
      uint32_t cp = 0;
      const char* first = s.data() + p + 1;
      const char* last = s.data() + std::min(s.size(), p + 1 + len);
      auto res = std::from_chars(first, last, cp, 16);
      if (res.ec != std::errc() || res.ptr != first + len) return 0;
      append_utf8(out, cp);
      return 1 + len;
    }
    default:
      if (e >= '0' && e <= '7') {
        uint32_t cp = static_cast<uint32_t>(e - '0');
        size_t q = p + 1;
        for (int k = 0; k < 2 && q < s.size() && s[q] >= '0' && s[q] <= '7'; ++k, ++q)
          cp = cp * 8 + static_cast<uint32_t>(s[q] - '0');
        append_utf8(out, cp);
        return q - p;
      }
      out += '\\';  // Python keeps unknown escapes as written
      out += e;
      return 1;
  }
}

}  // namespace lmx::chat::detail
