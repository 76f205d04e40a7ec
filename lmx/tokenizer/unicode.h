// UTF-8 and Unicode-property helpers shared by the tokenizer pipeline (internal).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace lmx::tokenizer::detail {

inline constexpr char32_t kReplacementChar = 0xFFFD;

// Decodes the code point starting at s[i] and advances i past it. An invalid or
// truncated sequence yields -1 and advances i past its maximal invalid subpart
// (the unit Python's errors="replace" turns into one U+FFFD).
int32_t next_codepoint(std::string_view s, size_t& i);

// Appends the UTF-8 encoding of cp (invalid code points become U+FFFD).
void append_utf8(std::string& out, char32_t cp);

// True when s is well-formed UTF-8 (no surrogates, no overlongs).
bool is_valid_utf8(std::string_view s);

// Copies s, replacing each maximal invalid subpart with U+FFFD.
std::string sanitize_utf8(std::string_view s);

// Length of the UTF-8 sequence a lead byte announces (1 for invalid leads).
inline size_t utf8_len(unsigned char lead) {
  if (lead < 0x80) return 1;
  if ((lead >> 5) == 0x6) return 2;
  if ((lead >> 4) == 0xE) return 3;
  if ((lead >> 3) == 0x1E) return 4;
  return 1;
}

// Number of bytes at the end of s that begin an incomplete (but so far valid)
// UTF-8 sequence: 0 when s ends on a character boundary.
size_t incomplete_utf8_tail(std::string_view s);

// Unicode properties, with the definitions the Rust std / HF tokenizers use.
bool is_whitespace(char32_t c);  // White_Space property
bool is_alphabetic(char32_t c);  // L* or Nl (approximation of Alphabetic)
bool is_numeric(char32_t c);     // N*
bool is_alphanumeric(char32_t c);
bool is_punctuation(char32_t c);      // P* or ASCII punctuation
bool is_nonspacing_mark(char32_t c);  // Mn
bool is_other(char32_t c);            // C*
bool is_bert_control(char32_t c);
bool is_bert_whitespace(char32_t c);
bool is_chinese_char(char32_t c);
bool is_digit(char32_t c);  // Nd

enum class NormalForm { kNFC, kNFD, kNFKC, kNFKD };
std::string unicode_normalize(std::string_view s, NormalForm form);
std::string to_lower(std::string_view s);

// GPT-2 byte-level alphabet: byte -> code point, and back (-1 when not a byte char).
char32_t byte_to_char(uint8_t b);
int byte_from_char(char32_t c);
// The UTF-8 encoding of byte_to_char(b), precomputed.
std::string_view byte_char_utf8(uint8_t b);

}  // namespace lmx::tokenizer::detail
