#include "lmx/server/request_fields.h"

#include <cmath>

#include "lmx/base/error.h"
#include "lmx/base/json_nesting.h"
#include "lmx/server/api_error.h"

namespace lmx::server {

namespace {

std::string range_text(double lo, double hi) {
  auto num = [](double v) {
    std::string s = std::to_string(v);
    s.erase(s.find_last_not_of('0') + 1);
    if (s.back() == '.') s.pop_back();
    return s;
  };
  return "between " + num(lo) + " and " + num(hi);
}

}  // namespace

RequestFields::RequestFields(const nlohmann::ordered_json& object, std::string prefix)
    : object_(object), prefix_(std::move(prefix)) {}

const nlohmann::ordered_json* RequestFields::get(const char* name) const {
  auto it = object_.find(name);
  if (it == object_.end() || it->is_null()) return nullptr;
  return &*it;
}

std::optional<bool> RequestFields::boolean(const char* name) const {
  const auto* v = get(name);
  if (!v) return std::nullopt;
  if (!v->is_boolean()) throw bad_field(param(name), "'" + param(name) + "' must be a boolean");
  return v->get<bool>();
}

std::optional<double> RequestFields::number(const char* name, double lo, double hi) const {
  const auto* v = get(name);
  if (!v) return std::nullopt;
  if (!v->is_number()) throw bad_field(param(name), "'" + param(name) + "' must be a number");
  const double d = v->get<double>();
  if (!std::isfinite(d) || d < lo || d > hi)
    throw bad_field(param(name),
                    "'" + param(name) + "' must be " + range_text(lo, hi) + ", got " + v->dump());
  return d;
}

std::optional<int64_t> RequestFields::integer(const char* name, int64_t lo, int64_t hi) const {
  const auto* v = get(name);
  if (!v) return std::nullopt;
  if (!v->is_number_integer())
    throw bad_field(param(name), "'" + param(name) + "' must be an integer");
  if (v->is_number_unsigned() && v->get<uint64_t>() > static_cast<uint64_t>(hi))
    throw bad_field(param(name), "'" + param(name) + "' must be at most " + std::to_string(hi) +
                                     ", got " + v->dump());
  const int64_t i = v->get<int64_t>();
  if (i < lo || i > hi)
    throw bad_field(param(name), "'" + param(name) + "' must be between " + std::to_string(lo) +
                                     " and " + std::to_string(hi) + ", got " + v->dump());
  return i;
}

std::optional<std::string> RequestFields::string(const char* name) const {
  const auto* v = get(name);
  if (!v) return std::nullopt;
  if (!v->is_string()) throw bad_field(param(name), "'" + param(name) + "' must be a string");
  return v->get<std::string>();
}

const nlohmann::ordered_json* RequestFields::object(const char* name) const {
  const auto* v = get(name);
  if (v && !v->is_object()) throw bad_field(param(name), "'" + param(name) + "' must be an object");
  return v;
}

const nlohmann::ordered_json* RequestFields::array(const char* name) const {
  const auto* v = get(name);
  if (v && !v->is_array()) throw bad_field(param(name), "'" + param(name) + "' must be an array");
  return v;
}

nlohmann::ordered_json parse_body(const std::string& body) {
  nlohmann::ordered_json j;
  try {
    check_json_nesting(body, "the request body");
  } catch (const FormatError& e) {
    throw ApiError(400, e.what(), "", "invalid_json");
  }
  try {
    j = nlohmann::ordered_json::parse(body);
  } catch (const nlohmann::json::exception& e) {  // parse_error, and out_of_range for a number that overflows
    // nlohmann's message locates the error (byte offset, what was expected).
    throw ApiError(400, std::string("the request body is not valid JSON: ") + e.what(), "",
                   "invalid_json");
  }
  if (!j.is_object())
    throw ApiError(400, "the request body must be a JSON object", "", "invalid_json");
  return j;
}

}  // namespace lmx::server
