// Muse Glimmer (Onyx) ATEM:
//   <atem:function_calls><atem:invoke name="f"><atem:parameter name="k">v</atem:parameter>
//   </atem:invoke></atem:function_calls>
// Not XML: a parameter's text may hold anything, `<atem:` and newlines included, so only
// the structural tags are read and the text between them is kept as written. The
// protocol is strict, as mlx-swift-lm reads it: one invoke per frame, nothing but blanks
// outside the tags, each parameter named once, values of the declared types, every
// required parameter present, and no undeclared parameter where the schema sets
// additionalProperties to false.
//
// Muse Glimmer frames its messages in Onyx: the prompt ends in `<|start|>assistant`, and
// the model continues the header: ` to=NAME<|message|>` + the ATEM call for a tool,
// ` to=self<|message|>` for reasoning, `<|message|>` (or ` to=user<|message|>`) for the
// answer; `<|eom|>` / `<|eot|>` end a message. Read here at the text level: the tool
// header opens the call region (its NAME must be the invoke's), reasoning is reasoning,
// the other control tokens are markup.
#include <algorithm>
#include <cctype>
#include <set>

#include "lmx/chat/tool_formats/common.h"
#include "lmx/chat/tool_formats/formats.h"

namespace lmx::chat::detail {

namespace {

const std::string kStart = "<atem:function_calls>";
const std::string kEnd = "</atem:function_calls>";
const std::string kInvoke = "<atem:invoke";
const std::string kInvokeEnd = "</atem:invoke>";
const std::string kParameter = "<atem:parameter";
const std::string kParameterEnd = "</atem:parameter>";

[[noreturn]] void fail(const std::string& what) {
  throw ToolCallParseError("ATEM tool call: " + what);
}

bool blank(std::string_view s) { return trim(s).empty(); }

// `name="v"` (or 'v') in an opening tag.
std::string attribute(std::string_view tag, std::string_view name) {
  for (size_t at = tag.find(name); at != std::string_view::npos; at = tag.find(name, at + 1)) {
    size_t q = at + name.size() + 1;
    bool bounded = at > 0 && std::isspace(static_cast<unsigned char>(tag[at - 1]));
    if (!bounded || q >= tag.size() || tag[q - 1] != '=' || (tag[q] != '"' && tag[q] != '\''))
      continue;
    size_t close = tag.find(tag[q], q + 1);
    if (close == std::string_view::npos) break;
    return std::string(tag.substr(q + 1, close - q - 1));
  }
  fail("tag without a " + std::string(name) + "=\"...\" attribute: " + std::string(tag));
}

// One element `PREFIX attrs>body CLOSE` at the start of `text` (after blanks). Returns
// the opening tag and body, and moves `text` past the element.
std::pair<std::string_view, std::string_view> element(std::string_view& text,
                                                      std::string_view prefix,
                                                      std::string_view close) {
  std::string_view rest = trim(text);
  size_t after = prefix.size();
  if (!starts_with(rest, prefix) || after >= rest.size() ||
      (rest[after] != '>' && !std::isspace(static_cast<unsigned char>(rest[after])))) {
    fail("expected " + std::string(prefix) + ", found '" + std::string(rest.substr(0, 40)) + "'");
  }
  size_t tag_end = rest.find('>');
  size_t close_at = rest.find(close, tag_end);
  if (tag_end == std::string_view::npos || close_at == std::string_view::npos)
    fail("unterminated " + std::string(prefix));
  text = rest.substr(close_at + close.size());
  return {rest.substr(0, tag_end + 1), rest.substr(tag_end + 1, close_at - tag_end - 1)};
}

bool has_type(const std::vector<std::string>& types, std::string_view t) {
  return std::find(types.begin(), types.end(), t) != types.end();
}

bool value_matches(const Json& v, const std::vector<std::string>& types) {
  if (v.is_null()) return has_type(types, "null");
  if (v.is_boolean()) return has_type(types, "boolean");
  if (v.is_number_integer()) return has_type(types, "integer") || has_type(types, "number");
  if (v.is_number()) return has_type(types, "number");
  if (v.is_string()) return has_type(types, "string");
  return has_type(types, v.is_array() ? "array" : "object");
}

Json parameter_value(std::string_view raw, const Json* schema, const std::string& name) {
  std::vector<std::string> types = schema_types(schema);
  if (types.empty()) return convert_text_value(raw, nullptr);
  bool only_string = std::all_of(types.begin(), types.end(),
                                 [](const std::string& t) { return t == "string" || t == "null"; });
  if (only_string && !(has_type(types, "null") && (trim(raw) == "null" || trim(raw) == "None"))) {
    return std::string(raw);  // the protocol keeps a string's blanks
  }
  Json v = convert_text_value(trim(raw), schema);
  if (!value_matches(v, types))
    fail("parameter '" + name + "' is not of its declared type: " + std::string(raw));
  return v;
}

ToolCall invoke(std::string_view body, const ToolSchemas& schemas) {
  auto [tag, params] = element(body, kInvoke, kInvokeEnd);
  if (!blank(body)) fail("text after </atem:invoke> (one invoke per frame)");
  ToolCall call;
  call.name = attribute(tag, "name");
  if (call.name.empty()) fail("invoke with an empty name");
  const ToolSpec* spec = schemas.tool(call.name);
  call.arguments = Json::object();
  while (!blank(params)) {
    auto [ptag, raw] = element(params, kParameter, kParameterEnd);
    std::string name = attribute(ptag, "name");
    if (name.empty() || call.arguments.contains(name))
      fail("parameter name empty or repeated: '" + name + "'");
    const Json* schema = schemas.parameter(call.name, name);
    if (spec && !schema &&
        spec->parameters.value("additionalProperties", Json(true)) == Json(false)) {
      fail("parameter '" + name + "' is not declared by '" + call.name + "'");
    }
    call.arguments[name] = parameter_value(raw, schema, name);
  }
  if (spec && spec->parameters.contains("required") && spec->parameters["required"].is_array()) {
    for (const auto& r : spec->parameters["required"]) {
      if (r.is_string() && !call.arguments.contains(r.get<std::string>())) {
        fail("required parameter '" + r.get<std::string>() + "' of '" + call.name + "' missing");
      }
    }
  }
  return call;
}

const std::string kOnyxTool = " to=";
const std::string kOnyxMessage = "<|message|>";
const std::vector<std::string> kOnyxEnds = {"<|eom|>", "<|eot|>"};
constexpr size_t kMaxRecipientBytes = 128;

// ` to=NAME<|message|>` opens a tool frame; anything else after ` to=` was text.
class OnyxToolScanner : public RegionScanner {
 public:
  std::optional<size_t> end(std::string_view region) override {
    if (!header_checked_) {
      size_t name_end = region.find_first_of(" \t\r\n<", kOnyxTool.size());
      if (name_end == std::string_view::npos) {
        if (region.size() > kOnyxTool.size() + kMaxRecipientBytes) return kNotACall;
        return std::nullopt;
      }
      std::string_view after = region.substr(name_end);
      bool may_be_message =
          kOnyxMessage.substr(0, after.size()) == after.substr(0, kOnyxMessage.size());
      if (name_end == kOnyxTool.size() || !may_be_message) return kNotACall;
      if (after.size() < kOnyxMessage.size()) return std::nullopt;
      header_checked_ = true;
    }
    return ends_.end(region);
  }

 private:
  bool header_checked_ = false;
  EndMarkerScanner ends_{{kEnd, kOnyxEnds[0], kOnyxEnds[1]}, kOnyxTool.size()};
};

class AtemParser : public ToolCallParser {
 public:
  ToolCallFormat format() const override { return ToolCallFormat::kAtem; }
  std::vector<std::string> start_markers() const override { return {kStart, kOnyxTool}; }
  std::unique_ptr<RegionScanner> scanner(std::string_view marker) const override {
    if (marker == kOnyxTool) return std::make_unique<OnyxToolScanner>();
    return std::make_unique<EndMarkerScanner>(std::vector<std::string>{kEnd}, marker.size());
  }
  std::vector<ToolCall> parse(std::string_view region, const ToolSchemas& schemas) const override {
    if (!starts_with(region, kOnyxTool))
      return {invoke(region_body(region, kStart, {kEnd}), schemas)};
    size_t message = region.find(kOnyxMessage);
    std::string recipient(region.substr(kOnyxTool.size(), message - kOnyxTool.size()));
    std::string_view payload = trim(region.substr(message + kOnyxMessage.size()));
    for (const auto& e : kOnyxEnds) {
      if (payload.ends_with(e)) payload = trim(payload.substr(0, payload.size() - e.size()));
    }
    if (!starts_with(payload, kStart) || !payload.ends_with(kEnd)) {
      fail("Onyx message to '" + recipient + "' does not hold one <atem:function_calls> frame");
    }
    ToolCall call = invoke(region_body(payload, kStart, {kEnd}), schemas);
    if (call.name != recipient)
      fail("Onyx message to '" + recipient + "' invokes '" + call.name + "'");
    return {call};
  }
  std::vector<std::string> reasoning_open_markers() const override {
    return {"<think>", " to=self<|message|>"};
  }
  std::vector<std::string> reasoning_close_markers() const override {
    return {"</think>", kOnyxEnds[0], kOnyxEnds[1]};
  }
  std::vector<std::string> markup_markers() const override {
    return {"<|start|>assistant", " to=user<|message|>", kOnyxMessage, kOnyxEnds[0], kOnyxEnds[1]};
  }
};

}  // namespace

std::unique_ptr<ToolCallParser> make_atem_parser() { return std::make_unique<AtemParser>(); }

}  // namespace lmx::chat::detail
