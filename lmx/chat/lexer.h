// Template lexer: text, tags and expression tokens with line/column, applying the
// whitespace rules of the transformers environment (trim_blocks, lstrip_blocks,
// `-`/`+` markers, one trailing newline dropped).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace lmx::chat::detail {

// Appends the UTF-8 encoding of a code point (lexer escapes, string case mapping).
void append_utf8(std::string& out, uint32_t cp);
// Decodes the Python escape sequence whose letter is s[p] (just after the backslash)
// into out; returns the characters it used from p, or 0 when it is malformed (\x, \u,
// \U without their hex digits). Unknown escapes are kept as written.
size_t decode_escape(std::string_view s, size_t p, std::string& out);

enum class TokenType : uint8_t {
  Text,
  VarBegin,
  VarEnd,
  BlockBegin,
  BlockEnd,
  Name,
  String,
  Int,
  Float,
  Op,
  End,
};

struct Token {
  TokenType type;
  std::string value;  // text, name, operator, or decoded string literal
  int64_t int_value = 0;
  double float_value = 0;
  int line = 1;
  int column = 1;
};

// Throws TemplateSyntaxError with line and column on malformed input.
std::vector<Token> tokenize(std::string_view source);

}  // namespace lmx::chat::detail
