// The syntaxes models use to call tools, and how to tell which one a model uses.
#pragma once

#include <optional>
#include <string_view>

#include <nlohmann/json_fwd.hpp>

namespace lmx::chat {

enum class ToolCallFormat {
  kJson,         // <tool_call>{"name": .., "arguments": {..}}</tool_call> (Qwen2.5/3, Hermes)
  kLfm2,         // <|tool_call_start|>[f(a='v', b=1)]<|tool_call_end|> (Python literals)
  kXmlFunction,  // <tool_call><function=f><parameter=k>v</parameter></function></tool_call>
  kGlm4,         // <tool_call>f<arg_key>k</arg_key><arg_value>v</arg_value></tool_call>
  kGemma,        // <start_function_call>call:f{k:<escape>v<escape>}<end_function_call>
                 // (Gemma 4: <|tool_call>call:f{k:<|"|>v<|"|>}<tool_call|>)
  kKimiK2,       // <|tool_calls_section_begin|><|tool_call_begin|>functions.f:0 ...
  kMinimaxM2,    // <minimax:tool_call><invoke name="f"><parameter name="k">v</parameter>..
  kMistral,      // [TOOL_CALLS]f[ARGS]{..} or [TOOL_CALLS][{..}]; no end tag
  kLlama3,       // <|python_tag|>{..} or inline {"name": .., "parameters": {..}}
  kGptOss,       // Harmony: <|channel|>commentary to=functions.f
                 // <|constrain|>json<|message|>{..}<|call|>
  kQwen35,       // Qwen 3.5: <tool_call> holding the xml_function form or the json form
  kAtem,         // <atem:function_calls><atem:invoke name="f"><atem:parameter
                 // name="k">v</atem:parameter>..
};

// "json", "lfm2", "xml_function", "glm4", "gemma", "kimi_k2", "minimax_m2", "mistral",
// "llama3", "gpt_oss", "qwen3_5", "atem".
std::string_view to_string(ToolCallFormat format);
// Our names and the tool_parser_type names other engines write into tokenizer_config
// (json_tools, pythonic, qwen3_coder, glm47, function_gemma, harmony, ...); nullopt
// when unknown.
std::optional<ToolCallFormat> tool_call_format_from_name(std::string_view name);

// The format to parse a model's output with: `explicit_format` when set, else
// tokenizer_config["tool_parser_type"] when it names a known format, else markers found
// in the chat template text, else by config.json's model_type, else kJson. A model type
// whose format reads a superset of what its template shows wins over the template
// (Qwen 3.5: qwen3_5 over the template's xml_function).
ToolCallFormat infer_tool_call_format(std::optional<ToolCallFormat> explicit_format,
                                      const nlohmann::ordered_json& tokenizer_config,
                                      std::string_view chat_template,
                                      std::string_view model_type);

}  // namespace lmx::chat
