// The XML function form shared by xml_function and qwen3_5 (not public API).
#pragma once

#include <string_view>
#include <vector>

#include "lmx/chat/tool_call_parser.h"

namespace lmx::chat::detail {

// `<function=f><parameter=k>\nv\n</parameter>..</function>` blocks, blanks between
// them and nothing else: stray text after a parameter, a JSON body, or a
// `<function=` inside some other text is a ToolCallParseError. A missing
// </parameter> or </function> is tolerated (the value ends at the next tag or the
// end). Values are typed by the declared schema (convert_text_value).
std::vector<ToolCall> parse_xml_functions(std::string_view body, const ToolSchemas& schemas);

}  // namespace lmx::chat::detail
