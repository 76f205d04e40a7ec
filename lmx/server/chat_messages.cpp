#include "lmx/server/chat_messages.h"

#include <set>
#include <string>

#include "lmx/server/api_error.h"

namespace lmx::server {

namespace {

std::string content_text(const nlohmann::ordered_json& content, const std::string& where) {
  if (content.is_string()) return content.get<std::string>();
  if (!content.is_array())
    throw bad_field(where, "'" + where + "' must be a string or an array of text parts");
  std::string text;
  for (const auto& part : content) {
    if (!part.is_object() || !part.contains("type") || part["type"] != "text" ||
        !part.contains("text") || !part["text"].is_string())
      throw ApiError(
          400,
          "'" + where +
              "' parts must be {\"type\": \"text\", \"text\": ...} (this server reads text only)",
          where, "unsupported_content");
    text += part["text"].get<std::string>();
  }
  return text;
}

nlohmann::ordered_json normalize_tool_calls(const nlohmann::ordered_json& calls,
                                            const std::string& where) {
  if (!calls.is_array()) throw bad_field(where, "'" + where + "' must be an array");
  nlohmann::ordered_json out = nlohmann::ordered_json::array();
  for (size_t i = 0; i < calls.size(); ++i) {
    const std::string at = where + "[" + std::to_string(i) + "]";
    const auto& c = calls[i];
    if (!c.is_object() || !c.contains("function") || !c["function"].is_object() ||
        !c["function"].contains("name") || !c["function"]["name"].is_string())
      throw bad_field(
          at,
          "'" + at + "' must be {\"type\": \"function\", \"function\": {\"name\", \"arguments\"}}");
    nlohmann::ordered_json call = c;
    auto& args = call["function"]["arguments"];
    if (args.is_string()) {
      // Clients send arguments as JSON text; templates want the object.
      auto parsed = nlohmann::ordered_json::parse(args.get<std::string>(), nullptr, false);
      if (!parsed.is_discarded()) args = std::move(parsed);
    } else if (args.is_null()) {
      args = nlohmann::ordered_json::object();
    }
    out.push_back(std::move(call));
  }
  return out;
}

}  // namespace

nlohmann::ordered_json normalize_messages(const nlohmann::ordered_json& messages) {
  static const std::set<std::string> kRoles = {"system", "developer", "user", "assistant", "tool"};
  if (messages.empty()) throw bad_field("messages", "'messages' must hold at least one message");
  nlohmann::ordered_json out = nlohmann::ordered_json::array();
  for (size_t i = 0; i < messages.size(); ++i) {
    const std::string where = "messages[" + std::to_string(i) + "]";
    const auto& m = messages[i];
    if (!m.is_object()) throw bad_field(where, "'" + where + "' must be an object");
    if (!m.contains("role") || !m["role"].is_string() ||
        !kRoles.count(m["role"].get<std::string>()))
      throw bad_field(
          where + ".role",
          "'" + where + ".role' must be one of system, developer, user, assistant, tool");
    const std::string role = m["role"].get<std::string>();
    nlohmann::ordered_json msg = {{"role", role}};
    const bool has_calls =
        role == "assistant" && m.contains("tool_calls") && !m["tool_calls"].is_null();
    if (m.contains("content") && !m["content"].is_null()) {
      msg["content"] = content_text(m["content"], where + ".content");
    } else if (has_calls) {
      msg["content"] = "";
    } else {
      throw bad_field(where + ".content", "'" + where + ".content' is required");
    }
    if (has_calls) msg["tool_calls"] = normalize_tool_calls(m["tool_calls"], where + ".tool_calls");
    for (const char* key : {"name", "tool_call_id", "reasoning_content"}) {
      if (!m.contains(key) || m[key].is_null()) continue;
      if (!m[key].is_string())
        throw bad_field(where + "." + key, "'" + where + "." + key + "' must be a string");
      msg[key] = m[key];
    }
    out.push_back(std::move(msg));
  }
  return out;
}

}  // namespace lmx::server
