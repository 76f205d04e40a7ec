// Base64 decoding (RFC 4648, standard and URL-safe alphabets), shared by the tokenizer
// files and the image data URLs.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace lmx {

// The decoded bytes, or nullopt at the first character outside both alphabets. Padding
// '=' and line breaks are skipped.
std::optional<std::string> decode_base64(std::string_view in);

}  // namespace lmx
