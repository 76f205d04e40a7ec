// One complete call region -> its stream events; shared by ToolCallProcessor and
// HarmonyStreamAdapter (not public API).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "lmx/chat/tool_call_parser.h"
#include "lmx/chat/tool_call_processor.h"

namespace lmx::chat::detail {

// A kRejectedToolCall event whose text and raw are `region`.
ToolStreamEvent rejected_event(std::string_view region, std::string error);

// The events of `region`: one kToolCall per call (the first carries `raw`; ids the
// output did not give are call_<next_id++>), or one rejection when the region is
// malformed, holds no call, or (with `tools` non-empty) calls an undeclared tool. A
// region the parser finds to be text (NotAToolCall) comes back as one text event.
std::vector<ToolStreamEvent> region_events(const ToolCallParser& parser,
                                           std::string_view region,
                                           const std::vector<ToolSpec>& tools,
                                           size_t& next_id);

}  // namespace lmx::chat::detail
