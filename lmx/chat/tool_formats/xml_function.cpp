// <tool_call><function=f><parameter=k>v</parameter></function></tool_call>
// (Qwen3-Coder, Qwen3.5, Nemotron). Values are text, one per line.
#include "lmx/chat/tool_formats/common.h"
#include "lmx/chat/tool_formats/formats.h"

namespace lmx::chat::detail {

namespace {

class XmlFunctionParser : public ToolCallParser {
 public:
  ToolCallFormat format() const override { return ToolCallFormat::kXmlFunction; }
  // Models sometimes drop the <tool_call> wrapper.
  std::vector<std::string> start_markers() const override { return {"<tool_call>", "<function="}; }
  std::unique_ptr<RegionScanner> scanner(std::string_view marker) const override {
    return std::make_unique<EndMarkerScanner>(
        std::vector<std::string>{marker == "<tool_call>" ? "</tool_call>" : "</function>"}, marker.size());
  }
  std::vector<ToolCall> parse(std::string_view region, const ToolSchemas& schemas) const override {
    std::vector<ToolCall> calls;
    for (const auto& fn : tag_blocks(region, "<function=", ">", "</function>")) {
      ToolCall call;
      call.name = std::string(trim(fn.attribute));
      if (call.name.empty()) throw ToolCallParseError("<function=> without a name");
      call.arguments = text_arguments(tag_blocks(fn.body, "<parameter=", ">", "</parameter>"), call.name, schemas,
                                      /*strip_newlines=*/true);
      calls.push_back(std::move(call));
    }
    if (calls.empty()) throw ToolCallParseError("no <function=NAME> in tool call");
    return calls;
  }
};

}  // namespace

std::unique_ptr<ToolCallParser> make_xml_function_parser() { return std::make_unique<XmlFunctionParser>(); }

}  // namespace lmx::chat::detail
