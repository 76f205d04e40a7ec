#include "lmx/chat/tool_formats/common.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <initializer_list>

#include "lmx/base/error.h"
#include "lmx/base/json_nesting.h"

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
    check_json_nesting(text, what);
  } catch (const FormatError& e) {
    throw ToolCallParseError(e.what());
  }
  try {
    return Json::parse(text);
  } catch (const nlohmann::json::exception& e) {  // parse_error, and out_of_range for a number that overflows
    std::string shown(text.substr(0, 200));
    throw ToolCallParseError(std::string(what) + " is not valid JSON (" + e.what() + "): " + shown +
                             (text.size() > 200 ? "..." : ""));
  }
}

Json try_parse_json(std::string_view text) {
  try {
    check_json_nesting(text, "");
  } catch (const FormatError&) {
    return Json(Json::value_t::discarded);
  }
  return Json::parse(text, nullptr, /*allow_exceptions=*/false);
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
  // The id sits beside "function" in the OpenAI form; some models put it inside.
  for (const Json* holder : {&object, fn}) {
    if (auto id = holder->find("id"); call.id.empty() && id != holder->end() && id->is_string()) {
      call.id = id->get<std::string>();
    }
  }
  return call;
}

std::vector<ToolCall> calls_from_json(const Json& object_or_list) {
  std::vector<ToolCall> calls;
  for (const auto& one :
       object_or_list.is_array() ? object_or_list : Json::array({object_or_list})) {
    calls.push_back(call_from_json(one));
  }
  return calls;
}

namespace {

// A type name as JSON Schema spells it. Tool schemas written by hand (or generated from
// other languages) also say "int", "str", "float", "bool", "dict", "list"...; mlx-swift-lm
// reads those too.
std::string json_type_name(std::string name) {
  std::transform(name.begin(), name.end(), name.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  auto starts = [&](std::initializer_list<std::string_view> prefixes) {
    return std::any_of(prefixes.begin(), prefixes.end(),
                       [&](std::string_view p) { return name.starts_with(p); });
  };
  if (starts({"int", "uint", "long", "short", "unsigned"})) return "integer";
  if (starts({"num", "float", "double"})) return "number";
  if (starts({"str", "text", "varchar", "char"})) return "string";
  if (starts({"bool", "binary"})) return "boolean";
  if (starts({"dict", "object"})) return "object";
  if (starts({"list", "array"})) return "array";
  return name;
}

// The JSON types a schema admits: "type" (a name or a list), the types of its enum
// values, and those of anyOf / oneOf / allOf branches.
void collect_types(const Json& schema, std::vector<std::string>& out, int depth) {
  if (!schema.is_object() || depth > 8) return;
  if (auto t = schema.find("type"); t != schema.end()) {
    for (const auto& one : t->is_array() ? *t : Json::array({*t})) {
      if (one.is_string()) out.push_back(json_type_name(one.get<std::string>()));
    }
  }
  if (auto e = schema.find("enum"); e != schema.end() && e->is_array()) {
    for (const auto& v : *e) {
      out.push_back(v.is_string()           ? "string"
                    : v.is_boolean()        ? "boolean"
                    : v.is_number_integer() ? "integer"
                    : v.is_number()         ? "number"
                    : v.is_null()           ? "null"
                    : v.is_array()          ? "array"
                                            : "object");
    }
  }
  for (const char* key : {"anyOf", "oneOf", "allOf"}) {
    if (auto branches = schema.find(key); branches != schema.end() && branches->is_array()) {
      for (const auto& b : *branches) collect_types(b, out, depth + 1);
    }
  }
}

std::optional<Json> try_json(std::string_view text) {
  Json v = try_parse_json(text);
  if (v.is_discarded()) return std::nullopt;
  return v;
}

}  // namespace

std::vector<std::string> schema_types(const Json* schema) {
  std::vector<std::string> out;
  if (schema) collect_types(*schema, out, 0);
  return out;
}

const Json* typed_parameter(const ToolSchemas& schemas,
                            std::string_view tool,
                            std::string_view name) {
  const Json* schema = schemas.parameter(tool, name);
  return schema_types(schema).empty() ? nullptr : schema;
}

Json convert_text_value(std::string_view text, const Json* schema) {
  std::vector<std::string> types = schema_types(schema);
  if (types.empty()) {
    if (auto v = try_json(text)) return *v;
    return std::string(text);
  }
  auto admits = [&](std::string_view type) {
    return std::find(types.begin(), types.end(), type) != types.end();
  };
  bool only_string = std::all_of(types.begin(), types.end(),
                                 [](const std::string& t) { return t == "string" || t == "null"; });
  std::string_view t = trim(text);
  if (admits("null") && (t == "null" || t == "None")) return nullptr;
  if (only_string) return std::string(text);
  // The more specific types first, as mlx-swift-lm does: a value that reads as one of
  // them is that type, whatever else the schema admits.
  if (admits("integer") || admits("number")) {
    if (auto v = try_json(t); v && v->is_number() && (admits("number") || v->is_number_integer()))
      return *v;
  }
  if (admits("boolean")) {
    std::string lower(t);
    std::transform(lower.begin(), lower.end(), lower.begin(),
                   [](unsigned char c) { return std::tolower(c); });
    for (const char* yes : {"true", "1", "yes", "on"}) {
      if (lower == yes) return true;
    }
    for (const char* no : {"false", "0", "no", "off"}) {
      if (lower == no) return false;
    }
  }
  if (admits("object") || admits("array")) {
    if (auto v = try_json(t); v && (v->is_object() || v->is_array())) return *v;
  }
  if (admits("string")) return std::string(text);
  if (auto v = try_json(t)) return *v;
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
