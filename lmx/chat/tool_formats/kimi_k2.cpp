// <|tool_calls_section_begin|><|tool_call_begin|>functions.f:0<|tool_call_argument_begin|>
// {json}<|tool_call_end|>...<|tool_calls_section_end|> (Kimi K2). The id is kept.
#include "lmx/chat/tool_formats/common.h"
#include "lmx/chat/tool_formats/formats.h"

namespace lmx::chat::detail {

namespace {

const std::string kSection = "<|tool_calls_section_begin|>";
const std::string kCall = "<|tool_call_begin|>";

// functions.get_weather:0 -> get_weather
std::string name_from_id(std::string_view id) {
  if (starts_with(id, "functions.")) id.remove_prefix(10);
  size_t colon = id.rfind(':');
  if (colon != std::string_view::npos && colon + 1 < id.size() &&
      id.substr(colon + 1).find_first_not_of("0123456789") == std::string_view::npos) {
    id = id.substr(0, colon);
  }
  return std::string(id);
}

class KimiK2Parser : public ToolCallParser {
 public:
  ToolCallFormat format() const override { return ToolCallFormat::kKimiK2; }
  std::vector<std::string> start_markers() const override { return {kSection, kCall}; }
  std::unique_ptr<RegionScanner> scanner(std::string_view marker) const override {
    return std::make_unique<EndMarkerScanner>(
        std::vector<std::string>{marker == kSection ? "<|tool_calls_section_end|>" : "<|tool_call_end|>"},
        marker.size());
  }
  std::vector<ToolCall> parse(std::string_view region, const ToolSchemas&) const override {
    std::vector<ToolCall> calls;
    for (const auto& b : tag_blocks(region, kCall, "<|tool_call_argument_begin|>", "<|tool_call_end|>")) {
      ToolCall call;
      call.id = std::string(trim(b.attribute));
      call.name = name_from_id(call.id);
      if (call.name.empty()) throw ToolCallParseError("Kimi tool call without a name: '" + call.id + "'");
      call.arguments = arguments_object(parse_json(trim(b.body), "arguments of '" + call.name + "'"), call.name);
      calls.push_back(std::move(call));
    }
    if (calls.empty()) throw ToolCallParseError("no <|tool_call_begin|> in Kimi tool-call section");
    return calls;
  }
};

}  // namespace

std::unique_ptr<ToolCallParser> make_kimi_k2_parser() { return std::make_unique<KimiK2Parser>(); }

}  // namespace lmx::chat::detail
