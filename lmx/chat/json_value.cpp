#include "lmx/chat/json_value.h"

#include <nlohmann/json.hpp>

#include "lmx/base/error.h"

namespace lmx::chat {

namespace {

Value convert(const nlohmann::ordered_json& j, uint32_t depth) {
  if (depth > kMaxValueDepth)
    throw InvalidArgument("JSON input nested deeper than " + std::to_string(kMaxValueDepth) + " levels");
  switch (j.type()) {
    case nlohmann::ordered_json::value_t::null: return Value::none();
    case nlohmann::ordered_json::value_t::boolean: return Value::boolean(j.get<bool>());
    case nlohmann::ordered_json::value_t::number_integer: return Value::integer(j.get<int64_t>());
    case nlohmann::ordered_json::value_t::number_unsigned:
      return Value::integer(static_cast<int64_t>(j.get<uint64_t>()));
    case nlohmann::ordered_json::value_t::number_float: return Value::floating(j.get<double>());
    case nlohmann::ordered_json::value_t::string: return Value::string(j.get<std::string>());
    case nlohmann::ordered_json::value_t::array: {
      std::vector<Value> items;
      items.reserve(j.size());
      for (const auto& x : j) items.push_back(convert(x, depth + 1));
      return Value::list(std::move(items));
    }
    case nlohmann::ordered_json::value_t::object: {
      std::vector<std::pair<Value, Value>> items;
      items.reserve(j.size());
      for (auto it = j.begin(); it != j.end(); ++it)
        items.emplace_back(Value::string(it.key()), convert(it.value(), depth + 1));
      return Value::dict(std::move(items));
    }
    default: return Value::none();
  }
}

}  // namespace

Value value_from_json(const nlohmann::ordered_json& j) { return convert(j, 1); }

}  // namespace lmx::chat
