// The prompt tokens of a request, built before the request waits for the model (so a
// template that fails to render is a 400, not a broken stream).
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "lmx/generate/model_container.h"
#include "lmx/server/image_source.h"

namespace lmx::server {

struct Prompt {
  std::vector<int32_t> tokens;
  bool templated =
      false;  // rendered through the chat template (reasoning and tool calls are parsed)
  bool in_reasoning = false;  // the template opened a <think> block the reply continues
  // Vision-language models: the images' processor outputs and each token's identity
  // (ScheduledRequest); empty without images.
  models::vlm::ImageInputs images;
  std::vector<int32_t> identity;
};

// Chat: through the model's chat template (messages, tools); a model without one (a
// base model) gets the message contents one per line after BOS, as ChatSession does.
// With a vision-language model the template's image markers are expanded for `images`
// (in the messages' order); markers and images that differ in number are a 400.
Prompt chat_prompt(generate::ModelContainer& model,
                   const nlohmann::ordered_json& messages,
                   const nlohmann::ordered_json& tools,
                   RequestImages images = {});
// Completions: the text as is, after BOS (no template); a vision-language model's image
// tokens in it are a 400 (images come through chat messages).
Prompt completion_prompt(generate::ModelContainer& model, const std::string& text);

}  // namespace lmx::server
