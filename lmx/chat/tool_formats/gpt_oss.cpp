// gpt-oss (Harmony): a call is a commentary message addressed to a function,
//   <|channel|>commentary to=functions.f <|constrain|>json<|message|>{json}<|call|>
// or with the recipient in the header: <|start|>assistant to=functions.f<|channel|>...
// The stream is routed by HarmonyStreamAdapter (channels, recipients, terminators);
// this parser reads one call frame it hands over, and serves callers that drive the
// parser interface directly.
#include "lmx/chat/tool_formats/common.h"
#include "lmx/chat/tool_formats/formats.h"

namespace lmx::chat::detail {

namespace {

const std::vector<std::string> kCallEnds = {"<|call|>", "<|end|>"};
const std::string kMessage = "<|message|>";

class GptOssParser : public ToolCallParser {
 public:
  ToolCallFormat format() const override { return ToolCallFormat::kGptOss; }
  // The prompt usually ends in `<|start|>assistant`, so the output may begin at ` to=`.
  std::vector<std::string> start_markers() const override {
    return {"<|channel|>commentary to=", "<|start|>assistant to=", " to=functions."};
  }
  std::unique_ptr<RegionScanner> scanner(std::string_view marker) const override {
    return std::make_unique<EndMarkerScanner>(kCallEnds, marker.size());
  }
  std::vector<ToolCall> parse(std::string_view region, const ToolSchemas&) const override {
    size_t to = region.find("to=");
    size_t message = region.find(kMessage);
    if (to == std::string_view::npos || message == std::string_view::npos || message < to) {
      throw ToolCallParseError("Harmony tool call without 'to=' and '<|message|>': " + std::string(region.substr(0, 200)));
    }
    std::string_view recipient = region.substr(to + 3);
    recipient = recipient.substr(0, recipient.find_first_of(" \t\n<"));
    if (starts_with(recipient, "functions.")) recipient.remove_prefix(10);
    ToolCall call;
    call.name = std::string(recipient);
    if (call.name.empty()) throw ToolCallParseError("Harmony tool call without a recipient name");
    std::string_view body = region.substr(message + kMessage.size());
    for (const auto& e : kCallEnds) {
      if (body.size() >= e.size() && body.substr(body.size() - e.size()) == e) body.remove_suffix(e.size());
    }
    call.arguments = arguments_object(parse_json(trim(body), "arguments of '" + call.name + "'"), call.name);
    return {call};
  }
};

}  // namespace

std::unique_ptr<ToolCallParser> make_gpt_oss_parser() { return std::make_unique<GptOssParser>(); }

}  // namespace lmx::chat::detail
