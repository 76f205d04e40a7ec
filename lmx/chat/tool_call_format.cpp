#include "lmx/chat/tool_call_format.h"

#include <array>
#include <string>
#include <utility>

#include <nlohmann/json.hpp>

namespace lmx::chat {

namespace {

constexpr std::array<std::pair<std::string_view, ToolCallFormat>, 12> kNames = {{
    {"json", ToolCallFormat::kJson},
    {"lfm2", ToolCallFormat::kLfm2},
    {"xml_function", ToolCallFormat::kXmlFunction},
    {"glm4", ToolCallFormat::kGlm4},
    {"gemma", ToolCallFormat::kGemma},
    {"kimi_k2", ToolCallFormat::kKimiK2},
    {"minimax_m2", ToolCallFormat::kMinimaxM2},
    {"mistral", ToolCallFormat::kMistral},
    {"llama3", ToolCallFormat::kLlama3},
    {"gpt_oss", ToolCallFormat::kGptOss},
    {"qwen3_5", ToolCallFormat::kQwen35},
    {"atem", ToolCallFormat::kAtem},
}};

// Names used by other engines' configs for the same syntaxes.
constexpr std::array<std::pair<std::string_view, ToolCallFormat>, 13> kAliases = {{
    {"json_tools", ToolCallFormat::kJson},
    {"hermes", ToolCallFormat::kJson},
    {"pythonic", ToolCallFormat::kLfm2},
    {"qwen3_coder", ToolCallFormat::kXmlFunction},
    {"qwen3_xml", ToolCallFormat::kXmlFunction},
    {"gemma4", ToolCallFormat::kGemma},
    {"nemotron", ToolCallFormat::kXmlFunction},
    {"glm47", ToolCallFormat::kGlm4},
    {"glm45", ToolCallFormat::kGlm4},
    {"function_gemma", ToolCallFormat::kGemma},
    {"minimax", ToolCallFormat::kMinimaxM2},
    {"harmony", ToolCallFormat::kGptOss},
    {"llama", ToolCallFormat::kLlama3},
}};

// Checked in order: a template may hold several markers (Qwen3.5 has <tool_call> and
// <function=), the more specific one decides.
constexpr std::array<std::pair<std::string_view, ToolCallFormat>, 13> kTemplateMarkers = {{
    {"<atem:function_calls>", ToolCallFormat::kAtem},
    {"<|tool_call_start|>", ToolCallFormat::kLfm2},
    {"<minimax:tool_call>", ToolCallFormat::kMinimaxM2},
    {"<|tool_calls_section_begin|>", ToolCallFormat::kKimiK2},
    {"<arg_key>", ToolCallFormat::kGlm4},
    {"<function=", ToolCallFormat::kXmlFunction},
    {"<start_function_call>", ToolCallFormat::kGemma},
    {"<|tool_call>", ToolCallFormat::kGemma},
    {"<|channel|>", ToolCallFormat::kGptOss},
    {"<tool_call>", ToolCallFormat::kJson},
    {"[TOOL_CALLS]", ToolCallFormat::kMistral},
    {"<|python_tag|>", ToolCallFormat::kLlama3},
    {"\"parameters\": ", ToolCallFormat::kLlama3},
}};

// Muse Glimmer's config.json model_type is not public yet: "onyx" and "muse" are our
// guess; its template's <atem:function_calls> decides before this table anyway.
constexpr std::array<std::pair<std::string_view, ToolCallFormat>, 11> kModelTypePrefixes = {{
    {"lfm2", ToolCallFormat::kLfm2},
    {"glm4", ToolCallFormat::kGlm4},
    {"gemma4", ToolCallFormat::kGemma},
    {"nemotron", ToolCallFormat::kXmlFunction},
    {"qwen3_5", ToolCallFormat::kQwen35},
    {"mistral3", ToolCallFormat::kMistral},
    {"ministral", ToolCallFormat::kMistral},
    {"gpt_oss", ToolCallFormat::kGptOss},
    {"minimax", ToolCallFormat::kMinimaxM2},
    {"onyx", ToolCallFormat::kAtem},
    {"muse", ToolCallFormat::kAtem},
}};

std::optional<ToolCallFormat> by_model_type(std::string_view model_type) {
  if (model_type == "gemma") return ToolCallFormat::kGemma;  // FunctionGemma
  for (const auto& [prefix, f] : kModelTypePrefixes) {
    if (model_type.substr(0, prefix.size()) == prefix) return f;
  }
  return std::nullopt;
}

// Whether the model's own format also reads what the template shows, so it is kept.
bool reads_superset(ToolCallFormat model, ToolCallFormat shown) {
  return model == ToolCallFormat::kQwen35 &&
         (shown == ToolCallFormat::kXmlFunction || shown == ToolCallFormat::kJson);
}

}  // namespace

std::string_view to_string(ToolCallFormat format) {
  for (const auto& [name, f] : kNames) {
    if (f == format) return name;
  }
  return "unknown";
}

std::optional<ToolCallFormat> tool_call_format_from_name(std::string_view name) {
  for (const auto& [n, f] : kNames) {
    if (n == name) return f;
  }
  for (const auto& [n, f] : kAliases) {
    if (n == name) return f;
  }
  return std::nullopt;
}

ToolCallFormat infer_tool_call_format(std::optional<ToolCallFormat> explicit_format,
                                      const nlohmann::ordered_json& tokenizer_config,
                                      std::string_view chat_template,
                                      std::string_view model_type) {
  if (explicit_format) return *explicit_format;
  if (tokenizer_config.is_object()) {
    auto it = tokenizer_config.find("tool_parser_type");
    if (it != tokenizer_config.end() && it->is_string()) {
      if (auto f = tool_call_format_from_name(it->get<std::string>())) return *f;
    }
  }
  std::optional<ToolCallFormat> model = by_model_type(model_type);
  for (const auto& [marker, f] : kTemplateMarkers) {
    if (chat_template.find(marker) == std::string_view::npos) continue;
    return model && reads_superset(*model, f) ? *model : f;
  }
  return model.value_or(ToolCallFormat::kJson);
}

}  // namespace lmx::chat
