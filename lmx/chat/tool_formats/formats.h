// One factory per tool-call format (each defined in tool_formats/<format>.cpp).
#pragma once

#include <memory>

#include "lmx/chat/tool_call_parser.h"

namespace lmx::chat::detail {

std::unique_ptr<ToolCallParser> make_json_parser();
std::unique_ptr<ToolCallParser> make_lfm2_parser();
std::unique_ptr<ToolCallParser> make_xml_function_parser();
std::unique_ptr<ToolCallParser> make_glm4_parser();
std::unique_ptr<ToolCallParser> make_gemma_parser();
std::unique_ptr<ToolCallParser> make_kimi_k2_parser();
std::unique_ptr<ToolCallParser> make_minimax_m2_parser();
std::unique_ptr<ToolCallParser> make_mistral_parser();
std::unique_ptr<ToolCallParser> make_llama3_parser();
std::unique_ptr<ToolCallParser> make_gpt_oss_parser();
std::unique_ptr<ToolCallParser> make_qwen3_5_parser();
std::unique_ptr<ToolCallParser> make_atem_parser();

}  // namespace lmx::chat::detail
