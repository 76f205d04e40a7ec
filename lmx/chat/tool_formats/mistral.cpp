// [TOOL_CALLS]f[ARGS]{json} (v11+, optionally f[CALL_ID]id[ARGS]{json}) and the older
// [TOOL_CALLS][{"name": .., "arguments": .., "id": ..}, ...]. There is no end tag: a call
// ends where its JSON value closes (or at end of stream).
#include "lmx/chat/tool_formats/common.h"
#include "lmx/chat/tool_formats/formats.h"

namespace lmx::chat::detail {

namespace {

const std::string kStart = "[TOOL_CALLS]";
const std::string kArgs = "[ARGS]";
const std::string kCallId = "[CALL_ID]";

// Where the JSON value of a region starts: right after the marker for the list form,
// after [ARGS] otherwise; npos while [ARGS] has not come yet.
size_t json_start(std::string_view region) {
  size_t p = region.find_first_not_of(" \t\r\n", kStart.size());
  if (p == std::string_view::npos) return std::string_view::npos;
  if (region[p] == '[' && !starts_with(region.substr(p), kArgs) && !starts_with(region.substr(p), kCallId)) return p;
  size_t args = region.find(kArgs, kStart.size());
  return args == std::string_view::npos ? std::string_view::npos : args + kArgs.size();
}

class MistralScanner : public RegionScanner {
 public:
  std::optional<size_t> end(std::string_view region) override {
    if (!value_) {
      size_t start = json_start(region);
      if (start == std::string_view::npos) return std::nullopt;
      value_.emplace(start);
    }
    return value_->advance(region);
  }
  bool complete_at_end_of_stream() const override { return true; }

 private:
  std::optional<JsonValueEnd> value_;
};

class MistralParser : public ToolCallParser {
 public:
  ToolCallFormat format() const override { return ToolCallFormat::kMistral; }
  std::vector<std::string> start_markers() const override { return {kStart}; }
  std::unique_ptr<RegionScanner> scanner(std::string_view) const override {
    return std::make_unique<MistralScanner>();
  }
  std::vector<ToolCall> parse(std::string_view region, const ToolSchemas&) const override {
    std::string_view body = trim(region.substr(kStart.size()));
    std::vector<ToolCall> calls;
    if (starts_with(body, "[") && !starts_with(body, kArgs) && !starts_with(body, kCallId)) {
      return calls_from_json(parse_json(body, "[TOOL_CALLS] list"));
    }
    size_t args = body.find(kArgs);
    if (args == std::string_view::npos) throw ToolCallParseError("[TOOL_CALLS] without [ARGS]: " + std::string(body.substr(0, 200)));
    std::string_view head = body.substr(0, args);
    ToolCall call;
    if (size_t id = head.find(kCallId); id != std::string_view::npos) {
      call.id = std::string(trim(head.substr(id + kCallId.size())));
      head = head.substr(0, id);
    }
    call.name = std::string(trim(head));
    if (call.name.empty()) throw ToolCallParseError("[TOOL_CALLS] without a function name");
    call.arguments = arguments_object(parse_json(trim(body.substr(args + kArgs.size())), "arguments of '" + call.name + "'"), call.name);
    calls.push_back(std::move(call));
    return calls;
  }
};

}  // namespace

std::unique_ptr<ToolCallParser> make_mistral_parser() { return std::make_unique<MistralParser>(); }

}  // namespace lmx::chat::detail
