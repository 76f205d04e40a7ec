// <|tool_calls_section_begin|><|tool_call_begin|>functions.f:0<|tool_call_argument_begin|>
// {json}<|tool_call_end|>...<|tool_calls_section_end|> (Kimi K2). The id is kept.
// Simplified framings models also write are read too: a section holding one
// `functions.f:0<|tool_call_argument_begin|>{json}` without the per-call tags, and calls
// without <|tool_call_end|>.
#include "lmx/chat/tool_formats/common.h"
#include "lmx/chat/tool_formats/formats.h"

namespace lmx::chat::detail {

namespace {

const std::string kSection = "<|tool_calls_section_begin|>";
const std::string kSectionEnd = "<|tool_calls_section_end|>";
const std::string kCall = "<|tool_call_begin|>";
const std::string kCallEnd = "<|tool_call_end|>";
const std::string kArguments = "<|tool_call_argument_begin|>";

// functions.get_weather:0 -> get_weather (tools.get_weather:0 too)
std::string name_from_id(std::string_view id) {
  for (std::string_view prefix : {"functions.", "tools."}) {
    if (starts_with(id, prefix)) id.remove_prefix(prefix.size());
  }
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
        std::vector<std::string>{marker == kSection ? kSectionEnd : kCallEnd}, marker.size());
  }
  std::vector<ToolCall> parse(std::string_view region, const ToolSchemas&) const override {
    std::string_view body =
        starts_with(region, kSection) ? region_body(region, kSection, {kSectionEnd}) : region;
    std::vector<TagBlock> blocks = tag_blocks(body, kCall, kArguments, kCallEnd);
    if (blocks.empty()) {
      if (size_t a = body.find(kArguments); a != std::string_view::npos) {
        std::string_view json = body.substr(a + kArguments.size());
        blocks.push_back({body.substr(0, a), json.substr(0, json.find(kCallEnd))});
      }
    }
    std::vector<ToolCall> calls;
    for (const auto& b : blocks) {
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
