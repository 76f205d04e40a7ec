#include "lmx/server/chat_messages.h"

#include <set>
#include <string>

#include "lmx/server/api_error.h"

namespace lmx::server {

namespace {

// The url of an image part ({"url": ...} or the url itself).
ImagePart image_part(const nlohmann::ordered_json& part, const std::string& at) {
  if (!part.contains("image_url")) throw bad_field(at + ".image_url", "'" + at + ".image_url' is required");
  const auto& v = part["image_url"];
  if (v.is_string()) return {v.get<std::string>(), at + ".image_url"};
  if (!v.is_object() || !v.contains("url") || !v["url"].is_string())
    throw bad_field(at + ".image_url.url", "'" + at + ".image_url' must be {\"url\": \"data:image/...;base64,...\"}");
  return {v["url"].get<std::string>(), at + ".image_url.url"};
}

// A message's content: its text (a string), or with images its parts in order.
nlohmann::ordered_json content_parts(const nlohmann::ordered_json& content, const std::string& where,
                                     std::vector<ImagePart>& images) {
  if (content.is_string()) return content;
  if (!content.is_array())
    throw bad_field(where, "'" + where + "' must be a string or an array of text and image_url parts");
  std::string text;
  nlohmann::ordered_json parts = nlohmann::ordered_json::array();
  bool has_image = false;
  for (size_t j = 0; j < content.size(); ++j) {
    const std::string at = where + "[" + std::to_string(j) + "]";
    const auto& part = content[j];
    const bool typed = part.is_object() && part.contains("type") && part["type"].is_string();
    const std::string type = typed ? part["type"].get<std::string>() : "";
    if (type == "text") {
      if (!part.contains("text") || !part["text"].is_string())
        throw bad_field(at + ".text", "'" + at + ".text' must be a string");
      text += part["text"].get<std::string>();
      parts.push_back({{"type", "text"}, {"text", part["text"]}});
    } else if (type == "image_url") {
      images.push_back(image_part(part, at));
      parts.push_back({{"type", "image"}});
      has_image = true;
    } else {
      throw ApiError(400,
                     "'" + at + "' must be {\"type\": \"text\", \"text\": ...} or {\"type\": \"image_url\", " +
                         "\"image_url\": {\"url\": ...}}" + (typed ? " (got type '" + type + "')" : ""),
                     at, "unsupported_content");
    }
  }
  if (has_image) return parts;
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

nlohmann::ordered_json normalize_messages(const nlohmann::ordered_json& messages, std::vector<ImagePart>& images) {
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
      const size_t before = images.size();
      msg["content"] = content_parts(m["content"], where + ".content", images);
      if (images.size() > before && role != "user")
        throw ApiError(400, "'" + images[before].param + "': images go in user messages, not " + role + " ones",
                       images[before].param, "unsupported_content");
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
