// The `messages` of a chat request, checked and put in the form chat templates expect
// (what transformers' apply_chat_template receives).
#pragma once

#include <nlohmann/json.hpp>

namespace lmx::server {

// Roles system, developer, user, assistant and tool. content: a string, null (an
// assistant message with tool_calls) or a list of {"type": "text", "text"} parts, which
// are joined. Assistant tool_calls keep OpenAI's form, except that arguments given as JSON
// text become objects (templates write them with tojson). Throws ApiError 400 naming the
// message and field ("messages[2].content").
nlohmann::ordered_json normalize_messages(const nlohmann::ordered_json& messages);

}  // namespace lmx::server
