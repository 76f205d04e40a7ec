#include "lmx/chat/tool_call_parser.h"

#include "lmx/chat/tool_call_processor.h"
#include "lmx/chat/tool_formats/formats.h"

namespace lmx::chat {

const nlohmann::ordered_json* ToolSchemas::parameter(std::string_view tool, std::string_view name) const {
  const ToolSpec* spec = this->tool(tool);
  if (!spec) return nullptr;
  auto props = spec->parameters.find("properties");
  if (props == spec->parameters.end() || !props->is_object()) return nullptr;
  auto p = props->find(std::string(name));
  return p == props->end() ? nullptr : &*p;
}

const ToolSpec* ToolSchemas::tool(std::string_view name) const {
  if (!tools_) return nullptr;
  for (const auto& spec : *tools_) {
    if (spec.name == name) return &spec;
  }
  return nullptr;
}

std::unique_ptr<ToolCallParser> make_tool_call_parser(ToolCallFormat format) {
  switch (format) {
    case ToolCallFormat::kJson: return detail::make_json_parser();
    case ToolCallFormat::kLfm2: return detail::make_lfm2_parser();
    case ToolCallFormat::kXmlFunction: return detail::make_xml_function_parser();
    case ToolCallFormat::kGlm4: return detail::make_glm4_parser();
    case ToolCallFormat::kGemma: return detail::make_gemma_parser();
    case ToolCallFormat::kKimiK2: return detail::make_kimi_k2_parser();
    case ToolCallFormat::kMinimaxM2: return detail::make_minimax_m2_parser();
    case ToolCallFormat::kMistral: return detail::make_mistral_parser();
    case ToolCallFormat::kLlama3: return detail::make_llama3_parser();
    case ToolCallFormat::kGptOss: return detail::make_gpt_oss_parser();
    case ToolCallFormat::kQwen35:
      return detail::make_qwen3_5_parser();
    case ToolCallFormat::kAtem:
      return detail::make_atem_parser();
  }
  throw InvalidArgument("make_tool_call_parser: unknown format");
}

std::vector<ToolCall> parse_tool_calls(ToolCallFormat format, std::string_view text, const std::vector<ToolSpec>* tools) {
  ToolCallProcessorOptions options;
  if (tools) options.tools = *tools;
  std::vector<ToolCall> calls;
  for (auto& e : process_tool_calls(format, text, std::move(options))) {
    if (e.kind == ToolStreamEvent::Kind::kRejectedToolCall) throw ToolCallParseError(e.error);
    if (e.kind == ToolStreamEvent::Kind::kToolCall) calls.push_back(std::move(e.call));
  }
  return calls;
}

}  // namespace lmx::chat
