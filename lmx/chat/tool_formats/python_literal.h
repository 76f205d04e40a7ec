// Python call syntax as LFM2 and Llama 3's <|python_tag|> write tool calls:
// `[f(a='v', b=1, c={"k": [True, None]}), g()]` or a single `tool.call(q="x")`.
#pragma once

#include <string_view>
#include <vector>

#include "lmx/chat/tool.h"
#include "lmx/chat/tool_call_parser.h"

namespace lmx::chat::detail {

// Keyword arguments only. Strings are read leniently, as templates render them without
// escaping: a quote closes a string only when what follows it (after blanks) is `,` `)`
// `]` `}` `:` or the end, so `'it's "x", y)]'` reads back whole. A bare word as an
// argument (`city=Paris`) is the string up to the next `,` or `)`. With a declared
// schema, a scalar argument takes the parameter's type (`n='25'` -> 25 for an integer,
// `s=5` -> "5" for a string); collections are read as literals. A single argument
// named properties / parameters / arguments / args / kwargs holding an object, and not
// itself declared, is unwrapped (LFM2 writes `f(properties={"city": "x"})`). A trailing
// `.call` of the name (Llama's built-in tools) and a leading `functions.` are dropped. Throws
// ToolCallParseError.
std::vector<ToolCall> parse_python_calls(std::string_view text, const ToolSchemas& schemas);

}  // namespace lmx::chat::detail
