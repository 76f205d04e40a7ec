// <tool_call>{"name": "f", "arguments": {...}}</tool_call> (Qwen2.5/3, Hermes, SmolLM3),
// and the same JSON without the wrapper, which these models write now and then.
#include "lmx/chat/tool_formats/common.h"
#include "lmx/chat/tool_formats/formats.h"

namespace lmx::chat::detail {

namespace {

const std::string kStart = "<tool_call>";
const std::vector<std::string> kEnd = {"</tool_call>"};
const std::string kBare = "{";

// A bare `{` opens a call region only when a JSON object may follow: the next
// non-blank character is `"` or `}`. Anything else (`{x}`, `{ 1`) is text at once.
class BareJsonScanner : public RegionScanner {
 public:
  std::optional<size_t> end(std::string_view region) override {
    if (!checked_) {
      size_t p = region.find_first_not_of(" \t\r\n", 1);
      if (p == std::string_view::npos) return std::nullopt;
      if (region[p] != '"' && region[p] != '}') return kNotACall;
      checked_ = true;
    }
    return value_.advance(region);
  }
  bool complete_at_end_of_stream() const override { return true; }

 private:
  bool checked_ = false;
  JsonValueEnd value_;
};

bool has_call_keys(std::string_view text) {
  return text.find("\"name\"") != std::string_view::npos &&
         (text.find("\"arguments\"") != std::string_view::npos ||
          text.find("\"parameters\"") != std::string_view::npos);
}

// Bare JSON is a call only with a name and arguments (ordinary JSON in an answer stays
// text); JSON that looks like a call but does not parse is rejected.
ToolCall bare_call(std::string_view region) {
  Json j = try_parse_json(region);
  if (j.is_discarded()) {
    if (has_call_keys(region)) parse_json(region, "bare JSON tool call");  // throws with the reason
    throw NotAToolCall("JSON text without a tool call");
  }
  const Json* fn = &j;
  if (auto f = j.find("function"); f != j.end() && f->is_object()) fn = &*f;
  if (!fn->contains("name") || (!fn->contains("arguments") && !fn->contains("parameters"))) {
    throw NotAToolCall("JSON text without a tool call");
  }
  return call_from_json(j);
}

// `{{"name": .., "arguments": {..}}}}`: some Qwen templates' stray braces around a call.
std::optional<Json> without_redundant_braces(std::string_view body) {
  if (!starts_with(body, "{{")) return std::nullopt;
  JsonValueEnd value(1);
  std::optional<size_t> end = value.advance(body);
  if (!end || trim(body.substr(*end)) != "}}") return std::nullopt;
  Json j = try_parse_json(body.substr(1, *end - 1));
  if (j.is_discarded()) return std::nullopt;
  return j;
}

class JsonParser : public ToolCallParser {
 public:
  ToolCallFormat format() const override { return ToolCallFormat::kJson; }
  std::vector<std::string> start_markers() const override { return {kStart, kBare}; }
  std::unique_ptr<RegionScanner> scanner(std::string_view marker) const override {
    if (marker == kBare) return std::make_unique<BareJsonScanner>();
    return std::make_unique<EndMarkerScanner>(kEnd, marker.size());
  }
  std::vector<ToolCall> parse(std::string_view region, const ToolSchemas&) const override {
    if (!starts_with(region, kStart)) return {bare_call(region)};
    std::string_view text = trim(region_body(region, kStart, kEnd));
    std::optional<Json> recovered = without_redundant_braces(text);
    Json body = recovered ? *recovered : parse_json(text, "<tool_call> body");
    return calls_from_json(body);
  }
};

}  // namespace

std::unique_ptr<ToolCallParser> make_json_parser() { return std::make_unique<JsonParser>(); }

}  // namespace lmx::chat::detail
