// Llama 3.1 - 3.3: <|python_tag|> followed by JSON calls (separated by ';' or in a JSON
// list) or a Python call of a built-in tool (brave_search.call(query="..")), up to
// <|eom_id|> / <|eot_id|> or the end; and the inline JSON form {"name": "f", "parameters": {...}}.
#include "lmx/chat/tool_formats/common.h"
#include "lmx/chat/tool_formats/formats.h"
#include "lmx/chat/tool_formats/python_literal.h"

namespace lmx::chat::detail {

namespace {

const std::string kPythonTag = "<|python_tag|>";
const std::vector<std::string> kTagEnds = {"<|eom_id|>", "<|eot_id|>"};

class InlineJsonScanner : public RegionScanner {
 public:
  std::optional<size_t> end(std::string_view region) override { return value_.advance(region); }
  bool complete_at_end_of_stream() const override { return true; }

 private:
  JsonValueEnd value_;
};

ToolCall inline_call(const Json& object) {
  if (!object.is_object() || (!object.contains("parameters") && !object.contains("arguments"))) {
    throw ToolCallParseError("JSON with \"name\" but no \"parameters\" is not a tool call: " + object.dump());
  }
  return call_from_json(object);
}

class Llama3Parser : public ToolCallParser {
 public:
  ToolCallFormat format() const override { return ToolCallFormat::kLlama3; }
  std::vector<std::string> start_markers() const override { return {kPythonTag, "{\"name\"", "{ \"name\""}; }
  std::unique_ptr<RegionScanner> scanner(std::string_view marker) const override {
    if (marker == kPythonTag) return std::make_unique<EndMarkerScanner>(kTagEnds, marker.size(), true);
    return std::make_unique<InlineJsonScanner>();
  }
  std::vector<ToolCall> parse(std::string_view region, const ToolSchemas& schemas) const override {
    if (!starts_with(region, kPythonTag)) return {inline_call(parse_json(region, "inline tool call"))};
    std::string_view body = trim(region_body(region, kPythonTag, kTagEnds));
    bool json_list = starts_with(body, "[") && starts_with(trim(body.substr(1)), "{");
    if (!starts_with(body, "{") && !json_list) return parse_python_calls(body, schemas);
    std::vector<ToolCall> calls;
    while (!body.empty()) {
      JsonValueEnd value;
      std::optional<size_t> end = value.advance(body);
      if (!end) throw ToolCallParseError("unterminated JSON after <|python_tag|>: " + std::string(body.substr(0, 200)));
      Json j = parse_json(body.substr(0, *end), "<|python_tag|> call");
      for (const auto& one : j.is_array() ? j : Json::array({j})) calls.push_back(inline_call(one));
      body = trim(body.substr(*end));
      if (starts_with(body, ";")) body = trim(body.substr(1));
    }
    return calls;
  }
};

}  // namespace

std::unique_ptr<ToolCallParser> make_llama3_parser() { return std::make_unique<Llama3Parser>(); }

}  // namespace lmx::chat::detail
