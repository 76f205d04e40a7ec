#include "lmx/server/chat_prompt.h"

#include <memory>

#include "lmx/base/error.h"
#include "lmx/server/api_error.h"

namespace lmx::server {

namespace {

const models::vlm::VisionLanguageModel* vision_model(generate::ModelContainer& model) {
  return dynamic_cast<const models::vlm::VisionLanguageModel*>(&model.model());
}

// The tokens of text a client wrote must not hold the model's image tokens (images come
// as image_url parts).
void refuse_image_tokens(generate::ModelContainer& model, const std::vector<int32_t>& tokens,
                         const std::string& param) {
  const auto* vlm = vision_model(model);
  if (!vlm) return;
  for (const int32_t t : tokens) {
    if (t == vlm->image_token_id() || t == vlm->prompt_image_marker())
      throw ApiError(400,
                     "'" + param + "' holds the model's image token " + std::to_string(t) +
                         " (images go in /v1/chat/completions messages as image_url parts)",
                     param, "invalid_image");
  }
}

}  // namespace

Prompt chat_prompt(generate::ModelContainer& model,
                   const nlohmann::ordered_json& messages,
                   const nlohmann::ordered_json& tools,
                   RequestImages images) {
  Prompt out;
  if (!model.has_chat_template()) {
    std::string text;
    for (size_t i = 0; i < messages.size(); ++i) {
      if (i > 0) text += "\n";
      text += messages[i]["content"].get<std::string>();
    }
    out.tokens = model.tokenizer().encode(text, true);
    refuse_image_tokens(model, out.tokens, "messages");
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
  if (const auto* vlm = vision_model(model)) {
    generate::ExpandedPrompt e;
    try {
      e = generate::expand_chat_images(*vlm, out.tokens, images.images, model.tokenizer());
    } catch (const InvalidArgument& error) {
      // A message's text that holds the model's image marker token itself.
      throw ApiError(400, std::string("the messages do not match their images: ") + error.what(), "messages",
                     "invalid_image");
    }
    out.tokens = std::move(e.tokens);
    if (!images.images.empty()) {
      out.identity = std::move(e.identity);
      out.images = std::move(images.inputs);
    }
  }
  return out;
}

Prompt completion_prompt(generate::ModelContainer& model, const std::string& text) {
  Prompt out;
  out.tokens = model.tokenizer().encode(text, true);
  refuse_image_tokens(model, out.tokens, "prompt");
  return out;
}

}  // namespace lmx::server
