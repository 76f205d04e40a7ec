// The prompt tokens of a request, built before the request waits for the model (so a
// template that fails to render is a 400, not a broken stream).
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "lmx/generate/model_container.h"

namespace lmx::server {

struct Prompt {
  std::vector<int32_t> tokens;
  bool templated =
      false;  // rendered through the chat template (reasoning and tool calls are parsed)
  bool in_reasoning = false;  // the template opened a <think> block the reply continues
};

// Chat: through the model's chat template (messages, tools); a model without one (a
// base model) gets the message contents one per line after BOS, as ChatSession does.
Prompt chat_prompt(const generate::ModelContainer& model,
                   const nlohmann::ordered_json& messages,
                   const nlohmann::ordered_json& tools);
// Completions: the text as is, after BOS (no template).
Prompt completion_prompt(const generate::ModelContainer& model, const std::string& text);

}  // namespace lmx::server
