#include "lmx/chat/tool.h"

#include <algorithm>
#include <cmath>

namespace lmx::chat {

using Json = nlohmann::ordered_json;

Json ToolSpec::to_json() const {
  return {{"type", "function"},
          {"function", {{"name", name}, {"description", description}, {"parameters", parameters}}}};
}

ToolSpec ToolSpec::from_json(const Json& json) {
  const Json& fn = json.contains("function") ? json.at("function") : json;
  if (!fn.is_object() || !fn.contains("name") || !fn.at("name").is_string()) {
    throw InvalidArgument("tool declaration: missing string field 'name' in " + json.dump());
  }
  ToolSpec spec;
  spec.name = fn.at("name").get<std::string>();
  if (auto it = fn.find("description"); it != fn.end() && it->is_string()) {
    spec.description = it->get<std::string>();
  }
  if (auto it = fn.find("parameters"); it != fn.end()) spec.parameters = *it;
  return spec;
}

Json tools_to_json(const std::vector<ToolSpec>& tools) {
  Json out = Json::array();
  for (const auto& t : tools) out.push_back(t.to_json());
  return out;
}

Json ToolCall::to_json() const {
  return {{"id", id}, {"type", "function"}, {"function", {{"name", name}, {"arguments", arguments}}}};
}

namespace {

bool has_type(const Json& value, const std::string& type) {
  if (type == "string") return value.is_string();
  if (type == "integer") {
    // 3.0 is an integer in JSON Schema.
    return value.is_number_integer() ||
           (value.is_number_float() && std::floor(value.get<double>()) == value.get<double>());
  }
  if (type == "number") return value.is_number();
  if (type == "boolean") return value.is_boolean();
  if (type == "object") return value.is_object();
  if (type == "array") return value.is_array();
  if (type == "null") return value.is_null();
  return true;  // a type we do not know: accept rather than reject valid calls
}

std::string type_list(const Json& type) {
  if (type.is_string()) return type.get<std::string>();
  std::string out;
  for (const auto& t : type) out += (out.empty() ? "" : " or ") + t.get<std::string>();
  return out;
}

std::string field_name(const std::string& path) {
  return path.empty() ? "arguments" : "argument '" + path + "'";
}

// `path` names the field ("options.depth", "tags[0]"); empty for the arguments object.
void check_value(const std::string& tool, const std::string& path, const Json& schema, const Json& value) {
  if (!schema.is_object()) return;
  auto fail = [&](const std::string& what) {
    throw InvalidArgument("tool '" + tool + "': " + field_name(path) + " " + what + ", got " + value.dump());
  };
  if (auto t = schema.find("type"); t != schema.end()) {
    bool ok = false;
    if (t->is_string()) ok = has_type(value, t->get<std::string>());
    if (t->is_array()) {
      for (const auto& one : *t) ok = ok || (one.is_string() && has_type(value, one.get<std::string>()));
    }
    if (!ok) fail("must be of type " + type_list(*t));
  }
  if (auto e = schema.find("enum"); e != schema.end() && e->is_array()) {
    if (std::find(e->begin(), e->end(), value) == e->end()) fail("must be one of " + e->dump());
  }
  std::string prefix = path.empty() ? "" : path + ".";
  if (value.is_object()) {
    if (auto req = schema.find("required"); req != schema.end() && req->is_array()) {
      for (const auto& key : *req) {
        if (key.is_string() && !value.contains(key.get<std::string>())) {
          throw InvalidArgument("tool '" + tool + "': missing required argument '" + prefix + key.get<std::string>() + "'");
        }
      }
    }
    if (auto props = schema.find("properties"); props != schema.end() && props->is_object()) {
      for (const auto& [key, sub] : value.items()) {
        if (auto p = props->find(key); p != props->end()) check_value(tool, prefix + key, *p, sub);
      }
    }
  }
  if (auto items = schema.find("items"); value.is_array() && items != schema.end()) {
    for (size_t i = 0; i < value.size(); ++i) {
      check_value(tool, path + "[" + std::to_string(i) + "]", *items, value[i]);
    }
  }
}

}  // namespace

void validate_tool_arguments(const ToolSpec& spec, const Json& arguments) {
  if (!arguments.is_object()) {
    throw InvalidArgument("tool '" + spec.name + "': arguments must be an object, got " + arguments.dump());
  }
  check_value(spec.name, "", spec.parameters, arguments);
}

namespace detail {

std::string encode_tool_result(const Json& result) {
  return result.dump(-1, ' ', false, Json::error_handler_t::replace);
}

void check_call_name(const ToolSpec& spec, const ToolCall& call) {
  if (call.name != spec.name) {
    throw InvalidArgument("tool '" + spec.name + "' cannot execute a call to '" + call.name + "'");
  }
}

}  // namespace detail

void ToolRegistry::add(ToolSpec spec, std::function<Json(const Json&)> handler) {
  ToolSpec copy = spec;
  add_handler(std::move(spec), [spec = std::move(copy), handler = std::move(handler)](const ToolCall& call) {
    validate_tool_arguments(spec, call.arguments);
    return detail::encode_tool_result(handler(call.arguments));
  });
}

void ToolRegistry::add_handler(ToolSpec spec, std::function<std::string(const ToolCall&)> handler) {
  if (contains(spec.name)) throw InvalidArgument("ToolRegistry: tool '" + spec.name + "' is already registered");
  handlers_.emplace(spec.name, std::move(handler));
  specs_.push_back(std::move(spec));
}

bool ToolRegistry::contains(std::string_view name) const { return find(name) != nullptr; }

const ToolSpec* ToolRegistry::find(std::string_view name) const {
  for (const auto& s : specs_) {
    if (s.name == name) return &s;
  }
  return nullptr;
}

std::string ToolRegistry::execute(const ToolCall& call) const {
  auto it = handlers_.find(call.name);
  if (it == handlers_.end()) {
    std::string known;
    for (const auto& s : specs_) known += (known.empty() ? "" : ", ") + s.name;
    throw InvalidArgument("no tool named '" + call.name + "' (registered: " + known + ")");
  }
  return it->second(call);
}

}  // namespace lmx::chat
