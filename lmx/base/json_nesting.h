// A bound on the nesting of untrusted JSON texts, checked before they reach
// nlohmann::json: its parser is iterative, but copying, comparing and dumping a value
// recurse once per level, so a 1 MB text of '[' parses and then overflows the stack at its
// first copy (a config, a session file, a server request body). Every reader of JSON from
// a file or a request calls check_json_nesting first.
#pragma once

#include <string_view>

namespace lmx {

// Deeper than any real config, template context, session or request (JSON schemas of
// structured output are bounded tighter, by constrained::kMaxSchemaDepth).
inline constexpr int kMaxJsonNesting = 512;

// Throws FormatError("<what>: JSON nested deeper than <max_depth> levels (at byte N)")
// when arrays / objects in `text` nest deeper than `max_depth`. Strings (with their
// escapes) are skipped; nothing else of the syntax is checked (the parser does that).
void check_json_nesting(std::string_view text, std::string_view what, int max_depth = kMaxJsonNesting);

}  // namespace lmx
