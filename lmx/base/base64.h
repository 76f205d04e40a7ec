// Base64 (RFC 4648): decoding of the standard and URL-safe alphabets, shared by the
// tokenizer files and the image data URLs; encoding (standard alphabet, padded) for the
// server's base64 embeddings.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace lmx {

// The decoded bytes, or nullopt at the first character outside both alphabets. Padding
// '=' and line breaks are skipped.
std::optional<std::string> decode_base64(std::string_view in);

// The standard-alphabet encoding of `bytes` bytes, padded with '='.
std::string encode_base64(const void* data, size_t bytes);

}  // namespace lmx
