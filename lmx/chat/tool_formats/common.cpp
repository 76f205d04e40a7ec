#include "lmx/chat/tool_formats/common.h"

#include <algorithm>
#include <cctype>
#include <cmath>

namespace lmx::chat::detail {

std::optional<size_t> EndMarkerScanner::end(std::string_view region) {
  size_t best = std::string_view::npos;
  size_t best_len = 0;
  size_t longest = 0;
  for (const auto& e : ends_) {
    longest = std::max(longest, e.size());
    size_t p = region.find(e, from_);
    if (p != std::string_view::npos && p < best) {
      best = p;
      best_len = e.size();
    }
  }
  if (best != std::string_view::npos) return best + best_len;
  // Resume just before the tail that may be the start of an end marker.
  if (region.size() >= longest) from_ = std::max(from_, region.size() - longest + 1);
  return std::nullopt;
}

std::optional<size_t> JsonValueEnd::advance(std::string_view text) {
  for (; pos_ < text.size(); ++pos_) {
    char c = text[pos_];
    if (depth_ == 0) {
      if (c == ' ' || c == '\n' || c == '\t' || c == '\r') continue;
      if (c != '{' && c != '[') return pos_;
      depth_ = 1;
      continue;
    }
    if (in_string_) {
      if (escape_) {
        escape_ = false;
      } else if (c == '\\') {
        escape_ = true;
      } else if (c == '"') {
        in_string_ = false;
      }
      continue;
    }
    if (c == '"') {
      in_string_ = true;
    } else if (c == '{' || c == '[') {
      ++depth_;
    } else if ((c == '}' || c == ']') && --depth_ == 0) {
      return ++pos_;
    }
  }
  return std::nullopt;
}

std::string_view trim(std::string_view s) {
  const char* ws = " \t\r\n";
  size_t b = s.find_first_not_of(ws);
  if (b == std::string_view::npos) return {};
  size_t e = s.find_last_not_of(ws);
  return s.substr(b, e - b + 1);
}

bool starts_with(std::string_view s, std::string_view prefix) { return s.substr(0, prefix.size()) == prefix; }

std::string_view region_body(std::string_view region, std::string_view marker, const std::vector<std::string>& ends) {
  std::string_view body = region.substr(marker.size());
  size_t cut = body.size();
  for (const auto& e : ends) cut = std::min(cut, body.find(e));
  return body.substr(0, cut);
}

std::string_view leading_marker(std::string_view region, const std::vector<std::string>& markers) {
  std::string_view best;
  for (const auto& m : markers) {
    if (starts_with(region, m) && m.size() > best.size()) best = m;
  }
  if (best.empty()) throw ToolCallParseError("tool call does not start with a known marker");
  return best;
}

Json parse_json(std::string_view text, std::string_view what) {
  try {
    return Json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    std::string shown(text.substr(0, 200));
    throw ToolCallParseError(std::string(what) + " is not valid JSON (" + e.what() + "): " + shown +
                             (text.size() > 200 ? "..." : ""));
  }
}

Json arguments_object(const Json& arguments, std::string_view tool) {
  Json args = arguments.is_string()
                  ? parse_json(arguments.get<std::string>(), "arguments of '" + std::string(tool) + "'")
                  : arguments;
  if (args.is_null()) return Json::object();
  if (!args.is_object()) {
    throw ToolCallParseError("arguments of '" + std::string(tool) + "' must be an object, got " + args.dump());
  }
  return args;
}

ToolCall call_from_json(const Json& object) {
  if (!object.is_object()) throw ToolCallParseError("tool call must be a JSON object, got " + object.dump());
  const Json* fn = &object;
  if (auto f = object.find("function"); f != object.end() && f->is_object()) fn = &*f;  // OpenAI form
  auto name = fn->find("name");
  if (name == fn->end() || !name->is_string() || name->get<std::string>().empty()) {
    throw ToolCallParseError("tool call has no \"name\": " + object.dump());
  }
  ToolCall call;
  call.name = name->get<std::string>();
  for (const char* key : {"arguments", "parameters"}) {
    if (auto a = fn->find(key); a != fn->end()) {
      call.arguments = arguments_object(*a, call.name);
      break;
    }
  }
  if (auto id = object.find("id"); id != object.end() && id->is_string()) call.id = id->get<std::string>();
  return call;
}

namespace {

bool declares(const Json& schema, std::string_view type) {
  auto t = schema.find("type");
  if (t == schema.end()) return false;
  if (t->is_string()) return t->get<std::string>() == type;
  if (t->is_array()) {
    for (const auto& one : *t) {
      if (one.is_string() && one.get<std::string>() == type) return true;
    }
  }
  return false;
}

std::optional<Json> try_json(std::string_view text) {
  Json v = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (v.is_discarded()) return std::nullopt;
  return v;
}

}  // namespace

Json convert_text_value(std::string_view text, const Json* schema) {
  if (schema && schema->is_object() && schema->contains("type")) {
    if (declares(*schema, "string")) return std::string(text);
    std::string_view t = trim(text);
    if (declares(*schema, "boolean")) {
      if (t == "true" || t == "True") return true;
      if (t == "false" || t == "False") return false;
    }
    if (declares(*schema, "null") && (t == "null" || t == "None")) return nullptr;
    if (declares(*schema, "integer") || declares(*schema, "number") || declares(*schema, "object") ||
        declares(*schema, "array")) {
      if (auto v = try_json(t)) return *v;
    }
    return std::string(text);
  }
  if (auto v = try_json(text)) return *v;
  return std::string(text);
}

std::vector<TagBlock> tag_blocks(std::string_view text,
                                 std::string_view open_prefix,
                                 std::string_view open_suffix,
                                 std::string_view close) {
  std::vector<TagBlock> out;
  size_t pos = text.find(open_prefix);
  while (pos != std::string_view::npos) {
    size_t attr_begin = pos + open_prefix.size();
    size_t attr_end = text.find(open_suffix, attr_begin);
    if (attr_end == std::string_view::npos) {
      throw ToolCallParseError("unterminated tag '" + std::string(open_prefix) + "' in tool call");
    }
    size_t body_begin = attr_end + open_suffix.size();
    size_t close_at = text.find(close, body_begin);
    size_t next_open = text.find(open_prefix, body_begin);
    size_t body_end = std::min(close_at, next_open);
    if (body_end == std::string_view::npos) body_end = text.size();
    out.push_back({text.substr(attr_begin, attr_end - attr_begin), text.substr(body_begin, body_end - body_begin)});
    pos = body_end == close_at ? text.find(open_prefix, close_at + close.size()) : next_open;
  }
  return out;
}

std::string_view strip_one_newline(std::string_view s) {
  if (starts_with(s, "\n")) s.remove_prefix(1);
  if (!s.empty() && s.back() == '\n') s.remove_suffix(1);
  return s;
}

Json text_arguments(const std::vector<TagBlock>& params, std::string_view tool, const ToolSchemas& schemas,
                    bool strip_newlines) {
  Json args = Json::object();
  for (const auto& p : params) {
    std::string key(trim(p.attribute));
    std::string_view value = strip_newlines ? strip_one_newline(p.body) : p.body;
    args[key] = convert_text_value(value, schemas.parameter(tool, key));
  }
  return args;
}

void TextReader::fail(const std::string& what) const {
  throw ToolCallParseError(std::string(syntax_) + ": " + what + " at offset " + std::to_string(pos_) + " in: " +
                           std::string(s_.substr(0, 200)));
}

void TextReader::skip_ws() {
  while (pos_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[pos_]))) ++pos_;
}

void TextReader::separator(char close) {
  skip_ws();
  if (peek() == ',') {
    ++pos_;
    skip_ws();
  } else if (peek() != close) {
    fail(std::string("expected ',' or '") + close + "'");
  }
}

TextReader::DepthGuard TextReader::nest() {
  if (++depth_ > kMaxDepth) {
    --depth_;
    fail("values nested deeper than " + std::to_string(kMaxDepth));
  }
  return DepthGuard{depth_};
}

}  // namespace lmx::chat::detail
