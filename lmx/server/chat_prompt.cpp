#include "lmx/server/chat_prompt.h"

#include <memory>

#include "lmx/base/error.h"
#include "lmx/server/api_error.h"

namespace lmx::server {

Prompt chat_prompt(const generate::ModelContainer& model,
                   const nlohmann::ordered_json& messages,
                   const nlohmann::ordered_json& tools) {
  Prompt out;
  if (!model.has_chat_template()) {
    std::string text;
    for (size_t i = 0; i < messages.size(); ++i) {
      if (i > 0) text += "\n";
      text += messages[i]["content"].get<std::string>();
    }
    out.tokens = model.tokenizer().encode(text, true);
    return out;
  }
  generate::UserInput input;
  input.messages = std::make_shared<nlohmann::ordered_json>(messages);
  if (tools.is_array() && !tools.empty())
    input.tools = std::make_shared<nlohmann::ordered_json>(tools);
  std::string text;
  try {
    text = model.render_prompt(input);
  } catch (const Error& e) {
    // Templates raise on conversations they do not accept (roles out of order, ...).
    throw ApiError(400, std::string("the chat template refused these messages: ") + e.what(),
                   "messages", "template_error");
  }
  const size_t open = text.rfind("<think>");
  out.in_reasoning = open != std::string::npos && text.find("</think>", open) == std::string::npos;
  // The template writes the special tokens itself (as transformers' apply_chat_template).
  out.tokens = model.tokenizer().encode(text, false);
  out.templated = true;
  return out;
}

Prompt completion_prompt(const generate::ModelContainer& model, const std::string& text) {
  Prompt out;
  out.tokens = model.tokenizer().encode(text, true);
  return out;
}

}  // namespace lmx::server
