// The `messages` of a chat request, checked and put in the form chat templates expect
// (what transformers' apply_chat_template receives).
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace lmx::server {

// An image part of a message: {"type": "image_url", "image_url": {"url": ...}} (or the
// url as a plain string), in the order the conversation holds them.
struct ImagePart {
  std::string url;    // a data: URL, an http(s) URL or a file (image_source.h decides)
  std::string param;  // the field it came from: "messages[1].content[0].image_url.url"
};

// Roles system, developer, user, assistant and tool. content: a string, null (an
// assistant message with tool_calls) or a list of {"type": "text", "text"} and
// {"type": "image_url", ...} parts. Text parts alone are joined into a string; a message
// with images keeps its parts in order as {"type": "image"} and {"type": "text", "text"}
// (the form VLM chat templates take) and each image's url goes to `images`. Assistant
// tool_calls keep OpenAI's form, except that arguments given as JSON text become objects
// (templates write them with tojson). Throws ApiError 400 naming the message and field
// ("messages[2].content").
nlohmann::ordered_json normalize_messages(const nlohmann::ordered_json& messages, std::vector<ImagePart>& images);

}  // namespace lmx::server
