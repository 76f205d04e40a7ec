#include "lmx/chat/tool_call_region.h"

#include <algorithm>

namespace lmx::chat::detail {

ToolStreamEvent rejected_event(std::string_view region, std::string error) {
  ToolStreamEvent e;
  e.kind = ToolStreamEvent::Kind::kRejectedToolCall;
  e.text = std::string(region);
  e.raw = std::string(region);
  e.error = std::move(error);
  return e;
}

std::vector<ToolStreamEvent> region_events(const ToolCallParser& parser,
                                           std::string_view region,
                                           const std::vector<ToolSpec>& tools,
                                           size_t& next_id) {
  std::vector<ToolCall> calls;
  try {
    calls = parser.parse(region, ToolSchemas(&tools));
  } catch (const NotAToolCall&) {
    ToolStreamEvent text;
    text.text = std::string(region);
    text.raw = std::string(region);
    return {text};
  } catch (const Error& e) {
    return {rejected_event(region, e.what())};
  } catch (const nlohmann::json::exception& e) {
    return {rejected_event(region, std::string("tool call: ") + e.what())};
  }
  if (calls.empty()) return {rejected_event(region, "tool call region holds no call")};
  if (!tools.empty()) {
    for (const auto& c : calls) {
      bool declared = std::any_of(tools.begin(), tools.end(),
                                  [&](const ToolSpec& t) { return t.name == c.name; });
      if (!declared) {
        std::string names;
        for (const auto& t : tools) names += (names.empty() ? "" : ", ") + t.name;
        return {rejected_event(
            region, "call to undeclared tool '" + c.name + "' (declared: " + names + ")")};
      }
    }
  }
  std::vector<ToolStreamEvent> out;
  for (size_t i = 0; i < calls.size(); ++i) {
    ToolStreamEvent e;
    e.kind = ToolStreamEvent::Kind::kToolCall;
    e.call = std::move(calls[i]);
    if (e.call.id.empty()) e.call.id = "call_" + std::to_string(next_id++);
    if (i == 0) e.raw = std::string(region);
    out.push_back(std::move(e));
  }
  return out;
}

}  // namespace lmx::chat::detail
