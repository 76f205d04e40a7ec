// Qwen 3.5: its template asks for the XML function form in a <tool_call> frame, but the
// model now and then answers in the Hermes JSON form of earlier Qwens in the same frame.
// The frame's first character decides: `<function=` is XML, `{` or `[` is JSON; anything
// else is rejected, as mlx-swift-lm does.
#include "lmx/chat/tool_formats/common.h"
#include "lmx/chat/tool_formats/formats.h"
#include "lmx/chat/tool_formats/xml_function.h"

namespace lmx::chat::detail {

namespace {

const std::string kToolCall = "<tool_call>";

class Qwen35Parser : public ToolCallParser {
 public:
  ToolCallFormat format() const override { return ToolCallFormat::kQwen35; }
  // Markers and region ends are those of the XML form.
  std::vector<std::string> start_markers() const override { return xml_->start_markers(); }
  std::unique_ptr<RegionScanner> scanner(std::string_view marker) const override {
    return xml_->scanner(marker);
  }
  bool starts_only_a_line(std::string_view marker) const override {
    return xml_->starts_only_a_line(marker);
  }
  std::vector<ToolCall> parse(std::string_view region, const ToolSchemas& schemas) const override {
    if (!starts_with(region, kToolCall)) return xml_->parse(region, schemas);
    std::string_view body = trim(region_body(region, kToolCall, {"</tool_call>"}));
    if (starts_with(body, "<function=")) return parse_xml_functions(body, schemas);
    if (!starts_with(body, "{") && !starts_with(body, "[")) {
      throw ToolCallParseError("<tool_call> holds neither <function=NAME> nor a JSON call: " +
                               std::string(body.substr(0, 200)));
    }
    return calls_from_json(parse_json(body, "<tool_call> body"));
  }

 private:
  std::unique_ptr<ToolCallParser> xml_ = make_xml_function_parser();
};

}  // namespace

std::unique_ptr<ToolCallParser> make_qwen3_5_parser() { return std::make_unique<Qwen35Parser>(); }

}  // namespace lmx::chat::detail
