// libFuzzer target: every tool-call format, on whole text (parse_tool_calls) and streamed
// in chunks through ToolCallProcessor, with and without declared tools. Input: byte 0
// picks the format and whether tools are declared, byte 1 the chunk size, the rest is
// the model's output. Checked: the events' `raw` texts add up to exactly the input.
#include <algorithm>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "lmx/chat/tool_call_parser.h"
#include "lmx/chat/tool_call_processor.h"
#include "tests/fuzz/fuzz_target.h"

namespace {

constexpr int kFormats = static_cast<int>(lmx::chat::ToolCallFormat::kAtem) + 1;

const std::vector<lmx::chat::ToolSpec>& tools() {
  static const std::vector<lmx::chat::ToolSpec> specs = {
      lmx::chat::ToolSpec::from_json(nlohmann::ordered_json::parse(R"({"name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"},
          "days": {"type": "integer"}, "metric": {"type": "boolean"}, "temp": {"type": "number"},
          "tags": {"type": "array"}, "opts": {"type": "object"}}}})")),
      lmx::chat::ToolSpec::from_json(nlohmann::ordered_json::parse(R"({"name": "f",
        "parameters": {"type": "object", "properties": {"a": {"type": ["integer", "null"]}}}})"))};
  return specs;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const auto format = static_cast<lmx::chat::ToolCallFormat>(data[0] % kFormats);
  const bool declared = data[0] & 0x80;
  const size_t chunk = 1 + data[1] % 32;
  const std::string_view text = lmx::fuzz::as_text(data + 2, size - 2);
  lmx::fuzz::guarded([&] { (void)lmx::chat::parse_tool_calls(format, text, declared ? &tools() : nullptr); });
  lmx::fuzz::guarded([&] {
    lmx::chat::ToolCallProcessorOptions options;
    if (declared) options.tools = tools();
    options.starts_in_reasoning = data[1] & 0x80;
    options.max_call_bytes = 4096;
    lmx::chat::ToolCallProcessor processor(format, options);
    std::string raw;
    for (size_t at = 0; at < text.size(); at += chunk) {
      for (auto& e : processor.feed(text.substr(at, chunk))) raw += e.raw;
    }
    for (auto& e : processor.finish()) raw += e.raw;
    if (raw != text) lmx::fuzz::finding("ToolCallProcessor", "the events' raw texts differ from the input");
  });
  return 0;
}
