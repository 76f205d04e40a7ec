#include "lmx/generate/constrained/json_schema_compiler.h"

#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>

#include "lmx/base/error.h"

namespace lmx::generate::constrained {

namespace {

using Json = nlohmann::ordered_json;

const std::set<std::string, std::less<>> kIgnored = {
    "title",    "description", "default",  "examples",  "$schema",     "$id",  "$comment",
    "deprecated", "readOnly",  "writeOnly", "$defs",    "definitions", "strict"};
const std::set<std::string, std::less<>> kSupported = {
    "type",      "enum",     "const",     "anyOf",     "$ref",      "properties", "required",
    "additionalProperties", "items", "minItems", "maxItems", "minLength", "maxLength"};

class SchemaCompiler {
 public:
  SchemaCompiler(Grammar& g, const Json& document, std::string_view what)
      : g_(g), document_(document), what_(what) {}

  uint32_t compile(const Json& s, const std::string& path, int depth) {
    if (depth > kMaxSchemaDepth)
      fail(path, "is nested deeper than " + std::to_string(kMaxSchemaDepth) + " levels");
    if (g_.nodes.size() > kMaxNodes)
      fail(path, "makes the grammar larger than " + std::to_string(kMaxNodes) + " nodes");
    if (s.is_boolean()) {
      if (!s.get<bool>()) fail(path, "is false: no value is valid");
      return g_.any_value();
    }
    if (!s.is_object()) fail(path, "must be an object or a boolean");
    for (const auto& [key, value] : s.items()) {
      if (kIgnored.count(key) || kSupported.count(key)) continue;
      throw Unsupported(what_ + ": keyword '" + key + "' at " + where(path) +
                        " is not supported by constrained decoding");
    }
    if (s.contains("$ref")) return ref(s, path, depth);
    if (s.contains("const")) return literal_of({s["const"]}, s, path);
    if (s.contains("enum")) {
      const Json& e = s["enum"];
      if (!e.is_array() || e.empty()) fail(path + "/enum", "must be a non-empty array");
      if (e.size() > kMaxLiteralsPerNode)
        fail(path + "/enum", "has " + std::to_string(e.size()) + " values (at most " +
                                 std::to_string(kMaxLiteralsPerNode) + ")");
      return literal_of(std::vector<Json>(e.begin(), e.end()), s, path);
    }
    if (s.contains("anyOf")) {
      const Json& a = s["anyOf"];
      if (!a.is_array() || a.empty()) fail(path + "/anyOf", "must be a non-empty array");
      if (s.contains("type")) fail(path, "has both anyOf and type (put type in each branch)");
      const uint32_t node = g_.add(Node(NodeKind::kAnyOf));
      std::vector<uint32_t> children;
      for (size_t i = 0; i < a.size(); ++i)
        children.push_back(compile(a[i], path + "/anyOf/" + std::to_string(i), depth + 1));
      g_.nodes[node].children = std::move(children);
      return node;
    }
    std::vector<std::string> types = types_of(s, path);
    if (types.size() == 1) return typed(types[0], s, path, depth);
    const uint32_t node = g_.add(Node(NodeKind::kAnyOf));
    std::vector<uint32_t> children;
    for (const auto& t : types) children.push_back(typed(t, s, path, depth));
    g_.nodes[node].children = std::move(children);
    return node;
  }

 private:
  [[noreturn]] void fail(const std::string& path, const std::string& message) const {
    throw InvalidArgument(what_ + ": the schema at " + where(path) + " " + message);
  }
  static std::string where(const std::string& path) { return path.empty() ? "#" : "#" + path; }

  std::vector<std::string> types_of(const Json& s, const std::string& path) const {
    static const std::set<std::string, std::less<>> kTypes = {
        "object", "array", "string", "number", "integer", "boolean", "null"};
    std::vector<std::string> out;
    if (!s.contains("type")) {
      // No type: what the other keywords imply, else any value.
      if (s.contains("properties") || s.contains("required") || s.contains("additionalProperties"))
        return {"object"};
      if (s.contains("items") || s.contains("minItems") || s.contains("maxItems")) return {"array"};
      if (s.contains("minLength") || s.contains("maxLength")) return {"string"};
      return {"any"};
    }
    const Json& t = s["type"];
    auto add = [&](const Json& v) {
      if (!v.is_string() || !kTypes.count(v.get<std::string>()))
        fail(path + "/type", "must name JSON types (object, array, string, number, integer, "
                             "boolean, null), got " + v.dump());
      out.push_back(v.get<std::string>());
    };
    if (t.is_array()) {
      if (t.empty()) fail(path + "/type", "must not be an empty array");
      for (const auto& v : t) add(v);
    } else {
      add(t);
    }
    return out;
  }

  static bool is_type(const Json& v, const std::string& type) {
    if (type == "object") return v.is_object();
    if (type == "array") return v.is_array();
    if (type == "string") return v.is_string();
    if (type == "number") return v.is_number();
    if (type == "integer") return v.is_number_integer() || v.is_number_unsigned();
    if (type == "boolean") return v.is_boolean();
    if (type == "null") return v.is_null();
    return true;
  }

  // enum / const: the values' compact JSON texts, those of the schema's type only.
  uint32_t literal_of(const std::vector<Json>& values, const Json& s, const std::string& path) {
    std::vector<std::string> types = s.contains("type") ? types_of(s, path) : std::vector<std::string>{};
    std::vector<std::string> texts;
    for (const Json& v : values) {
      if (!types.empty() &&
          std::none_of(types.begin(), types.end(), [&](const auto& t) { return is_type(v, t); }))
        continue;
      texts.push_back(v.dump());
      literal_bytes_ += texts.back().size();
    }
    if (texts.empty()) fail(path, "has no enum / const value of its type");
    if (literal_bytes_ > kMaxLiteralBytes)
      fail(path, "holds more than " + std::to_string(kMaxLiteralBytes) + " bytes of enum values");
    return g_.literal(std::move(texts));
  }

  uint32_t ref(const Json& s, const std::string& path, int depth) {
    const Json& r = s["$ref"];
    if (!r.is_string()) fail(path + "/$ref", "must be a string");
    const std::string target = r.get<std::string>();
    for (const auto& [key, value] : s.items())
      if (key != "$ref" && !kIgnored.count(key))
        throw Unsupported(what_ + ": keyword '" + key + "' beside $ref at " + where(path) +
                          " is not supported by constrained decoding");
    if (auto it = refs_.find(target); it != refs_.end()) return it->second;
    if (target.empty() || target[0] != '#')
      fail(path + "/$ref", "'" + target + "' is not a reference into this schema (#/$defs/...)");
    const Json* doc = nullptr;
    try {
      doc = &document_.at(Json::json_pointer(target.substr(1)));
    } catch (const std::exception&) {
      fail(path + "/$ref", "'" + target + "' does not resolve to anything in the schema");
    }
    // The placeholder is filled after the target compiles, so a recursion refers to it.
    const uint32_t node = g_.add(Node(NodeKind::kAnyOf));
    refs_[target] = node;
    const uint32_t body = compile(*doc, target.substr(1), depth + 1);
    g_.nodes[node].children = {body};
    return node;
  }

  uint32_t count(const Json& s, const char* key, const std::string& path) const {
    if (!s.contains(key)) return 0;
    const Json& v = s[key];
    if (!v.is_number_integer() && !v.is_number_unsigned())
      fail(path + "/" + key, "must be a non-negative integer");
    if (v.is_number_integer() && v.get<int64_t>() < 0)
      fail(path + "/" + key, "must be a non-negative integer");
    return static_cast<uint32_t>(std::min<uint64_t>(v.get<uint64_t>(), kUnbounded - 1));
  }

  uint32_t typed(const std::string& type, const Json& s, const std::string& path, int depth) {
    if (type == "any") return g_.any_value();
    if (type == "null") return g_.literal({"null"});
    if (type == "boolean") return g_.literal({"true", "false"});
    if (type == "number" || type == "integer")
      return g_.add(Node::number(type == "integer"));
    if (type == "string") {
      Node n(NodeKind::kString);
      n.min = count(s, "minLength", path);
      if (s.contains("maxLength")) n.max = count(s, "maxLength", path);
      if (n.min > n.max) fail(path, "has minLength > maxLength");
      return g_.add(std::move(n));
    }
    if (type == "array") {
      Node n(NodeKind::kArray);
      n.min = count(s, "minItems", path);
      if (s.contains("maxItems")) n.max = count(s, "maxItems", path);
      if (n.min > n.max) fail(path, "has minItems > maxItems");
      const uint32_t node = g_.add(std::move(n));
      uint32_t items = 0;
      if (!s.contains("items")) {
        items = g_.any_value();
      } else if (s["items"].is_array()) {
        throw Unsupported(what_ + ": 'items' as an array (tuple) at " + where(path) +
                          " is not supported by constrained decoding");
      } else {
        items = compile(s["items"], path + "/items", depth + 1);
      }
      g_.nodes[node].child = items;
      return node;
    }
    return object(s, path, depth);
  }

  uint32_t object(const Json& s, const std::string& path, int depth) {
    const Json empty = Json::object();
    const Json& props = s.contains("properties") ? s["properties"] : empty;
    if (!props.is_object()) fail(path + "/properties", "must be an object");
    std::set<std::string> required;
    if (s.contains("required")) {
      const Json& r = s["required"];
      if (!r.is_array()) fail(path + "/required", "must be an array of strings");
      for (const auto& v : r) {
        if (!v.is_string()) fail(path + "/required", "must be an array of strings");
        required.insert(v.get<std::string>());
      }
    }
    const Json* extra = s.contains("additionalProperties") ? &s["additionalProperties"] : nullptr;
    if (extra && !extra->is_boolean() && !extra->is_object())
      fail(path + "/additionalProperties", "must be a boolean or a schema");
    if (props.empty() && required.empty()) {
      if (extra && extra->is_boolean() && !extra->get<bool>()) return g_.literal({"{}"});
      const uint32_t node = g_.add(Node(NodeKind::kMap));
      const uint32_t key = g_.add(Node(NodeKind::kString));
      const uint32_t value = extra && extra->is_object()
                                 ? compile(*extra, path + "/additionalProperties", depth + 1)
                                 : g_.any_value();
      g_.nodes[node].child = value;
      g_.nodes[node].children = {key};
      return node;
    }
    const uint32_t node = g_.add(Node(NodeKind::kObject));
    std::vector<Property> properties;
    for (const auto& [name, schema] : props.items()) {
      Property p;
      p.key = g_.literal({Json(name).dump()});
      p.value = compile(schema, path + "/properties/" + name, depth + 1);
      p.required = required.erase(name) > 0;
      properties.push_back(p);
    }
    for (const auto& name : required) {  // required but not described: any value
      properties.push_back({g_.literal({Json(name).dump()}), g_.any_value(), true});
    }
    g_.nodes[node].properties = std::move(properties);
    return node;
  }

  Grammar& g_;
  const Json& document_;
  std::string what_;
  std::map<std::string, uint32_t> refs_;
  size_t literal_bytes_ = 0;
};

}  // namespace

uint32_t add_json_schema(Grammar& g, const nlohmann::ordered_json& schema, std::string_view what) {
  return SchemaCompiler(g, schema, what).compile(schema, "", 0);
}

Grammar compile_json_schema(const nlohmann::ordered_json& schema, std::string_view what) {
  Grammar g;
  g.root = add_json_schema(g, schema, what);
  if (!g.prune_unfinishable())
    throw InvalidArgument(std::string(what) +
                          ": the schema admits no finite JSON value (a recursion with no way out)");
  return g;
}

Grammar json_object_grammar() {
  Grammar g;
  const uint32_t any = g.any_value();
  const uint32_t node = g.add(Node(NodeKind::kMap, any));
  g.nodes[node].children = {g.add(Node(NodeKind::kString))};
  g.root = node;
  return g;
}

}  // namespace lmx::generate::constrained
