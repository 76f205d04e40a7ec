// <|tool_call_start|>[f(a='v', b=1), g()]<|tool_call_end|> (LFM2 / LFM2.5). A call cut
// off before <|tool_call_end|> at the end of the stream (the model stopped right after
// the list) is parsed as it is.
#include "lmx/chat/tool_formats/common.h"
#include "lmx/chat/tool_formats/formats.h"
#include "lmx/chat/tool_formats/python_literal.h"

namespace lmx::chat::detail {

namespace {

const std::string kStart = "<|tool_call_start|>";
const std::vector<std::string> kEnd = {"<|tool_call_end|>"};

class Lfm2Parser : public ToolCallParser {
 public:
  ToolCallFormat format() const override { return ToolCallFormat::kLfm2; }
  std::vector<std::string> start_markers() const override { return {kStart}; }
  std::unique_ptr<RegionScanner> scanner(std::string_view marker) const override {
    return std::make_unique<EndMarkerScanner>(kEnd, marker.size(), /*complete_at_eos=*/true);
  }
  std::vector<ToolCall> parse(std::string_view region, const ToolSchemas& schemas) const override {
    std::string_view body = trim(region_body(region, kStart, kEnd));
    // Some LFM2 checkpoints answer with a JSON list of {"name", "arguments"} instead.
    if (starts_with(body, "[{") || starts_with(body, "{")) {
      return calls_from_json(parse_json(body, "<|tool_call_start|> body"));
    }
    return parse_python_calls(body, schemas);
  }
};

}  // namespace

std::unique_ptr<ToolCallParser> make_lfm2_parser() { return std::make_unique<Lfm2Parser>(); }

}  // namespace lmx::chat::detail
