// <minimax:tool_call><invoke name="f"><parameter name="k">v</parameter></invoke>
// </minimax:tool_call> (MiniMax-M2). Values are text.
#include "lmx/chat/tool_formats/common.h"
#include "lmx/chat/tool_formats/formats.h"

namespace lmx::chat::detail {

namespace {

const std::string kStart = "<minimax:tool_call>";

std::string_view unquote(std::string_view s) {
  s = trim(s);
  if (s.size() >= 2 && (s.front() == '"' || s.front() == '\'') && s.back() == s.front()) {
    s = s.substr(1, s.size() - 2);
  }
  return s;
}

class MinimaxM2Parser : public ToolCallParser {
 public:
  ToolCallFormat format() const override { return ToolCallFormat::kMinimaxM2; }
  std::vector<std::string> start_markers() const override { return {kStart}; }
  std::unique_ptr<RegionScanner> scanner(std::string_view marker) const override {
    return std::make_unique<EndMarkerScanner>(std::vector<std::string>{"</minimax:tool_call>"}, marker.size());
  }
  std::vector<ToolCall> parse(std::string_view region, const ToolSchemas& schemas) const override {
    std::vector<ToolCall> calls;
    for (const auto& invoke : tag_blocks(region, "<invoke name=", ">", "</invoke>")) {
      ToolCall call;
      call.name = std::string(unquote(invoke.attribute));
      if (call.name.empty()) throw ToolCallParseError("<invoke> without a name");
      std::vector<TagBlock> params = tag_blocks(invoke.body, "<parameter name=", ">", "</parameter>");
      for (auto& p : params) p.attribute = unquote(p.attribute);
      call.arguments = text_arguments(params, call.name, schemas, /*strip_newlines=*/false);
      calls.push_back(std::move(call));
    }
    if (calls.empty()) throw ToolCallParseError("no <invoke name=...> in MiniMax tool call");
    return calls;
  }
};

}  // namespace

std::unique_ptr<ToolCallParser> make_minimax_m2_parser() { return std::make_unique<MinimaxM2Parser>(); }

}  // namespace lmx::chat::detail
