// Python call syntax as LFM2 and Llama 3's <|python_tag|> write tool calls:
// `[f(a='v', b=1, c={"k": [True, None]}), g()]` or a single `tool.call(q="x")`.
#pragma once

#include <string_view>
#include <vector>

#include "lmx/chat/tool.h"

namespace lmx::chat::detail {

// Keyword arguments only. Strings are read leniently, as templates render them without
// escaping: a quote closes a string only when what follows it (after blanks) is `,` `)`
// `]` `}` `:` or the end, so `'it's "x", y)]'` reads back whole. A trailing `.call` of
// the name (Llama's built-in tools) is dropped. Throws ToolCallParseError.
std::vector<ToolCall> parse_python_calls(std::string_view text);

}  // namespace lmx::chat::detail
