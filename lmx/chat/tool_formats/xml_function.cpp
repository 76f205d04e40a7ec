// <tool_call><function=f><parameter=k>v</parameter></function></tool_call>
// (Qwen3-Coder, Qwen3.5, Nemotron). Values are text, one per line.
#include "lmx/chat/tool_formats/xml_function.h"

#include <algorithm>

#include "lmx/chat/tool_formats/common.h"
#include "lmx/chat/tool_formats/formats.h"

namespace lmx::chat::detail {

namespace {

const std::string kToolCall = "<tool_call>";
const std::string kFunction = "<function=";
const std::string kFunctionEnd = "</function>";
const std::string kParameter = "<parameter=";
const std::string kParameterEnd = "</parameter>";

class XmlFunctionReader : TextReader {
 public:
  XmlFunctionReader(std::string_view text, const ToolSchemas& schemas)
      : TextReader(text, "XML function call"), schemas_(schemas) {}

  std::vector<ToolCall> calls() {
    std::vector<ToolCall> out;
    for (skip_ws(); pos_ < s_.size(); skip_ws()) out.push_back(function());
    if (out.empty()) fail("no <function=NAME> in tool call");
    return out;
  }

 private:
  bool at(std::string_view tag) const { return s_.substr(pos_, tag.size()) == tag; }

  // The NAME of `<prefix>NAME>`.
  std::string tag_name(std::string_view prefix) {
    pos_ += prefix.size();
    size_t close = s_.find('>', pos_);
    if (close == std::string_view::npos) fail("unterminated tag '" + std::string(prefix) + "'");
    std::string name(trim(s_.substr(pos_, close - pos_)));
    if (name.empty() || name.find_first_of(" \t\r\n<") != std::string::npos) {
      fail("bad name '" + name + "' in tag '" + std::string(prefix) + "'");
    }
    pos_ = close + 1;
    return name;
  }

  ToolCall function() {
    if (!at(kFunction))
      fail("expected <function=NAME>, found '" + std::string(s_.substr(pos_, 40)) + "'");
    ToolCall call;
    call.name = tag_name(kFunction);
    std::vector<TagBlock> params;
    for (skip_ws(); pos_ < s_.size(); skip_ws()) {
      if (at(kFunctionEnd)) {
        pos_ += kFunctionEnd.size();
        break;
      }
      if (!at(kParameter)) fail("unexpected text inside <function=" + call.name + ">");
      size_t attribute_begin = pos_ + kParameter.size();
      tag_name(kParameter);
      std::string_view attribute = s_.substr(attribute_begin, pos_ - 1 - attribute_begin);
      size_t value_end = std::min(
          {s_.find(kParameterEnd, pos_), s_.find(kParameter, pos_), s_.find(kFunctionEnd, pos_)});
      if (value_end == std::string_view::npos) value_end = s_.size();
      params.push_back({attribute, s_.substr(pos_, value_end - pos_)});
      pos_ = value_end;
      if (at(kParameterEnd)) pos_ += kParameterEnd.size();
    }
    call.arguments = text_arguments(params, call.name, schemas_, /*strip_newlines=*/true);
    return call;
  }

  const ToolSchemas& schemas_;
};

class XmlFunctionParser : public ToolCallParser {
 public:
  ToolCallFormat format() const override { return ToolCallFormat::kXmlFunction; }
  // Models sometimes drop the <tool_call> wrapper.
  std::vector<std::string> start_markers() const override { return {kToolCall, kFunction}; }
  // Without the wrapper, `<function=` is a call only where it starts a line, so one
  // quoted inside JSON or prose is text.
  bool starts_only_a_line(std::string_view marker) const override { return marker == kFunction; }
  std::unique_ptr<RegionScanner> scanner(std::string_view marker) const override {
    return std::make_unique<EndMarkerScanner>(
        std::vector<std::string>{marker == kToolCall ? "</tool_call>" : kFunctionEnd},
        marker.size());
  }
  std::vector<ToolCall> parse(std::string_view region, const ToolSchemas& schemas) const override {
    if (!starts_with(region, kToolCall)) return parse_xml_functions(region, schemas);
    return parse_xml_functions(region_body(region, kToolCall, {"</tool_call>"}), schemas);
  }
};

}  // namespace

std::vector<ToolCall> parse_xml_functions(std::string_view body, const ToolSchemas& schemas) {
  return XmlFunctionReader(body, schemas).calls();
}

std::unique_ptr<ToolCallParser> make_xml_function_parser() { return std::make_unique<XmlFunctionParser>(); }

}  // namespace lmx::chat::detail
