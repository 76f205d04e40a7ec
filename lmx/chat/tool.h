// Tools a model may call: their declarations (what the chat template shows the model),
// the calls parsed from its output, and the handlers that run them.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "lmx/base/error.h"

namespace lmx::chat {

// An untyped tool declaration. `parameters` is a JSON schema of the arguments object
// ({"type": "object", "properties": {...}, "required": [...]}).
struct ToolSpec {
  std::string name;
  std::string description;
  nlohmann::ordered_json parameters = {{"type", "object"},
                                       {"properties", nlohmann::ordered_json::object()}};

  // What transformers passes into the template's `tools` variable:
  // {"type": "function", "function": {"name", "description", "parameters"}}.
  nlohmann::ordered_json to_json() const;
  // Reads that form, or the bare {"name", "description", "parameters"} object.
  // Throws InvalidArgument naming the missing field.
  static ToolSpec from_json(const nlohmann::ordered_json& json);
};

// A list of specs as the template's `tools` variable.
nlohmann::ordered_json tools_to_json(const std::vector<ToolSpec>& tools);

// Checks `arguments` against spec.parameters: an object, required properties present,
// declared properties of the declared JSON type (recursively through objects and
// arrays), enum values respected. Throws InvalidArgument naming the tool and the field
// (`tool 'get_weather': argument 'city' must be a string, got 3`).
void validate_tool_arguments(const ToolSpec& spec, const nlohmann::ordered_json& arguments);

struct ToolCall;

namespace detail {
// User types may define their (de)serializers for nlohmann::json or ordered_json
// (NLOHMANN_DEFINE_TYPE_* of nlohmann 3.11.2 only defines them for nlohmann::json).
template <class T>
T from_tool_json(const nlohmann::ordered_json& j) {
  if constexpr (requires { j.template get<T>(); }) {
    return j.template get<T>();
  } else {
    return nlohmann::json(j).template get<T>();
  }
}
template <class T>
nlohmann::ordered_json to_tool_json(const T& value) {
  if constexpr (std::is_constructible_v<nlohmann::ordered_json, const T&>) {
    return nlohmann::ordered_json(value);
  } else {
    return nlohmann::ordered_json(nlohmann::json(value));
  }
}
}  // namespace detail

// A typed tool: In and Out are (de)serialized through nlohmann's to_json / from_json
// (NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE and friends). The schema is declared by hand in
// spec.parameters; it is what the model sees and what arguments are checked against.
template <class In, class Out>
class Tool {
 public:
  Tool(ToolSpec spec, std::function<Out(const In&)> handler)
      : spec_(std::move(spec)), handler_(std::move(handler)) {}

  const ToolSpec& spec() const { return spec_; }

  // Arguments -> In. Throws InvalidArgument naming the tool and the field.
  In decode(const nlohmann::ordered_json& arguments) const {
    validate_tool_arguments(spec_, arguments);
    try {
      return detail::from_tool_json<In>(arguments);
    } catch (const nlohmann::json::exception& e) {
      throw InvalidArgument("tool '" + spec_.name + "': arguments do not fit: " + e.what());
    }
  }

  // Decodes the call's arguments, runs the handler and returns the result as JSON text.
  // Exceptions thrown by the handler propagate unchanged.
  std::string execute(const ToolCall& call) const;

 private:
  ToolSpec spec_;
  std::function<Out(const In&)> handler_;
};

// One call parsed from a model's output.
struct ToolCall {
  std::string id;    // from the output when the format carries one, else "call_<n>"
  std::string name;
  nlohmann::ordered_json arguments = nlohmann::ordered_json::object();

  // Runs `tool` on this call's arguments; see Tool::execute.
  template <class In, class Out>
  std::string execute(const Tool<In, Out>& tool) const {
    return tool.execute(*this);
  }

  // OpenAI form: {"id", "type": "function", "function": {"name", "arguments"}} with the
  // arguments as an object (what chat templates expect in an assistant message).
  nlohmann::ordered_json to_json() const;
};

namespace detail {
// JSON text of a result; invalid UTF-8 is replaced rather than thrown on.
std::string encode_tool_result(const nlohmann::ordered_json& result);
void check_call_name(const ToolSpec& spec, const ToolCall& call);
}  // namespace detail

template <class In, class Out>
std::string Tool<In, Out>::execute(const ToolCall& call) const {
  detail::check_call_name(spec_, call);
  return detail::encode_tool_result(detail::to_tool_json(handler_(decode(call.arguments))));
}

// Several tools of any In/Out types, dispatched by name. ChatSession holds one.
class ToolRegistry {
 public:
  // Throws InvalidArgument when a tool of that name is already registered.
  template <class In, class Out>
  void add(Tool<In, Out> tool) {
    ToolSpec spec = tool.spec();
    add_handler(std::move(spec), [tool = std::move(tool)](const ToolCall& call) {
      return tool.execute(call);
    });
  }
  // An untyped tool: the handler gets the checked arguments object, returns a result.
  void add(ToolSpec spec,
           std::function<nlohmann::ordered_json(const nlohmann::ordered_json&)> handler);

  const std::vector<ToolSpec>& specs() const { return specs_; }
  nlohmann::ordered_json to_json() const { return tools_to_json(specs_); }
  bool contains(std::string_view name) const;
  const ToolSpec* find(std::string_view name) const;

  // Runs the tool named by the call; returns its result as JSON text. Throws
  // InvalidArgument for an unknown name or arguments that do not fit.
  std::string execute(const ToolCall& call) const;

 private:
  void add_handler(ToolSpec spec, std::function<std::string(const ToolCall&)> handler);

  std::vector<ToolSpec> specs_;
  std::unordered_map<std::string, std::function<std::string(const ToolCall&)>> handlers_;
};

}  // namespace lmx::chat
