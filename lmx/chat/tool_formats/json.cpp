// <tool_call>{"name": "f", "arguments": {...}}</tool_call> (Qwen2.5/3, Hermes, SmolLM3).
#include "lmx/chat/tool_formats/common.h"
#include "lmx/chat/tool_formats/formats.h"

namespace lmx::chat::detail {

namespace {

const std::string kStart = "<tool_call>";
const std::vector<std::string> kEnd = {"</tool_call>"};

class JsonParser : public ToolCallParser {
 public:
  ToolCallFormat format() const override { return ToolCallFormat::kJson; }
  std::vector<std::string> start_markers() const override { return {kStart}; }
  std::unique_ptr<RegionScanner> scanner(std::string_view marker) const override {
    return std::make_unique<EndMarkerScanner>(kEnd, marker.size());
  }
  std::vector<ToolCall> parse(std::string_view region, const ToolSchemas&) const override {
    Json body = parse_json(trim(region_body(region, kStart, kEnd)), "<tool_call> body");
    std::vector<ToolCall> calls;
    if (body.is_array()) {
      for (const auto& one : body) calls.push_back(call_from_json(one));
    } else {
      calls.push_back(call_from_json(body));
    }
    return calls;
  }
};

}  // namespace

std::unique_ptr<ToolCallParser> make_json_parser() { return std::make_unique<JsonParser>(); }

}  // namespace lmx::chat::detail
