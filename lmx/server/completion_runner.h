// One generation for a request, holding the model for its duration
// (ModelContainer::perform serializes requests): the reply split into content,
// reasoning and tool calls, reported as it comes and collected for the final answer.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "lmx/chat/tool.h"
#include "lmx/generate/model_container.h"
#include "lmx/server/chat_prompt.h"
#include "lmx/server/request_parsing.h"

namespace lmx::server {

struct Delta {
  enum class Kind { content, reasoning, tool_call };
  Kind kind = Kind::content;
  std::string text;     // content / reasoning
  chat::ToolCall call;  // tool_call
};

struct Outcome {
  std::string content;
  std::string reasoning;
  std::vector<chat::ToolCall> calls;
  generate::GenerationInfo info;
  // OpenAI's finish_reason: "length" when cut by max_tokens (it wins over tool calls),
  // "tool_calls" when the model ended its message after calling tools, else "stop".
  std::string finish_reason;
};

struct ToolUse {
  bool parse_calls = false;  // tools declared and tool_choice auto
  std::vector<chat::ToolSpec> specs;
};

// on_delta returns false to stop (a client that went away): the generation ends at the
// next token and the model is released.
Outcome run_completion(generate::ModelContainer& model,
                       const Prompt& prompt,
                       const SamplingRequest& request,
                       const ToolUse& tools,
                       const std::function<bool(const Delta&)>& on_delta);

}  // namespace lmx::server
