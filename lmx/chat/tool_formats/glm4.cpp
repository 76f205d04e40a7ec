// <tool_call>f<arg_key>k</arg_key><arg_value>v</arg_value></tool_call> (GLM-4.5 .. 4.7).
#include "lmx/chat/tool_formats/common.h"
#include "lmx/chat/tool_formats/formats.h"

namespace lmx::chat::detail {

namespace {

const std::string kStart = "<tool_call>";
const std::vector<std::string> kEnd = {"</tool_call>"};

class Glm4Parser : public ToolCallParser {
 public:
  ToolCallFormat format() const override { return ToolCallFormat::kGlm4; }
  std::vector<std::string> start_markers() const override { return {kStart}; }
  std::unique_ptr<RegionScanner> scanner(std::string_view marker) const override {
    return std::make_unique<EndMarkerScanner>(kEnd, marker.size());
  }
  std::vector<ToolCall> parse(std::string_view region, const ToolSchemas& schemas) const override {
    std::string_view body = region_body(region, kStart, kEnd);
    size_t first_key = body.find("<arg_key>");
    std::string_view head = trim(body.substr(0, first_key));
    ToolCall call;
    // GLM-4 (0414) writes `name\n{json}` instead of key/value tags.
    if (first_key == std::string_view::npos && head.find('{') != std::string_view::npos) {
      size_t brace = head.find('{');
      call.name = std::string(trim(head.substr(0, brace)));
      call.arguments = arguments_object(parse_json(head.substr(brace), "GLM tool call arguments"), call.name);
    } else {
      call.name = std::string(head);
      std::vector<TagBlock> params = tag_blocks(body, "<arg_key>", "</arg_key>", "</arg_value>");
      for (auto& p : params) {
        size_t v = p.body.find("<arg_value>");
        if (v == std::string_view::npos || !trim(p.body.substr(0, v)).empty()) {
          throw ToolCallParseError("<arg_key>" + std::string(p.attribute) + "</arg_key> not followed by <arg_value>");
        }
        p.body.remove_prefix(v + 11);
      }
      call.arguments = text_arguments(params, call.name, schemas, /*strip_newlines=*/false);
    }
    if (call.name.empty() || call.name.find_first_of(" \n<>{}") != std::string::npos) {
      throw ToolCallParseError("GLM tool call without a valid name: '" + call.name + "'");
    }
    return {call};
  }
};

}  // namespace

std::unique_ptr<ToolCallParser> make_glm4_parser() { return std::make_unique<Glm4Parser>(); }

}  // namespace lmx::chat::detail
