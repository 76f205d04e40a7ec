#include "lmx/models/config_reader.h"

#include <cmath>

#include "lmx/base/error.h"

namespace lmx::models {

ConfigReader::ConfigReader(const nlohmann::json& json, std::string source)
    : json_(&json), source_(std::move(source)) {
  if (!json_->is_object()) throw FormatError(source_ + ": expected a JSON object");
}

void ConfigReader::fail(const std::string& key, const std::string& what) const {
  throw FormatError(source_ + ": field '" + key + "' " + what);
}

bool ConfigReader::has(const std::string& key) const {
  auto it = json_->find(key);
  return it != json_->end() && !it->is_null();
}

int64_t ConfigReader::require_int(const std::string& key) const {
  if (!has(key)) fail(key, "is missing");
  return get_int(key, 0);
}

int64_t ConfigReader::get_int(const std::string& key, int64_t fallback) const {
  if (!has(key)) return fallback;
  const auto& v = json_->at(key);
  if (v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)) {
    fail(key, "is out of range, got " + v.dump());
  }
  if (v.is_number_integer()) return v.get<int64_t>();
  if (v.is_number_float()) {
    // Checked before the cast: a double outside int64's range (1e30) has no int64 value
    // (found by the config_json fuzz target: undefined behaviour under UBSan).
    const double d = v.get<double>();
    if (!(d >= -9223372036854775808.0 && d < 9223372036854775808.0)) fail(key, "is out of range, got " + v.dump());
    if (d == std::trunc(d)) return static_cast<int64_t>(d);
  }
  fail(key, "must be an integer, got " + v.dump());
}

double ConfigReader::get_double(const std::string& key, double fallback) const {
  if (!has(key)) return fallback;
  const auto& v = json_->at(key);
  if (!v.is_number()) fail(key, "must be a number, got " + v.dump());
  return v.get<double>();
}

double ConfigReader::get_positive(const std::string& key, double fallback) const {
  const double v = get_double(key, fallback);
  if (!std::isfinite(v) || v <= 0) fail(key, "must be a positive number, got " + json_->at(key).dump());
  return v;
}

double ConfigReader::get_non_negative(const std::string& key, double fallback) const {
  const double v = get_double(key, fallback);
  if (!std::isfinite(v) || v < 0) fail(key, "must be a number >= 0, got " + json_->at(key).dump());
  return v;
}

bool ConfigReader::get_bool(const std::string& key, bool fallback) const {
  if (!has(key)) return fallback;
  const auto& v = json_->at(key);
  if (!v.is_boolean()) fail(key, "must be true or false, got " + v.dump());
  return v.get<bool>();
}

std::string ConfigReader::get_string(const std::string& key, const std::string& fallback) const {
  if (!has(key)) return fallback;
  const auto& v = json_->at(key);
  if (!v.is_string()) fail(key, "must be a string, got " + v.dump());
  return v.get<std::string>();
}

std::vector<double> ConfigReader::get_doubles(const std::string& key) const {
  std::vector<double> out;
  if (!has(key)) return out;
  const auto& v = json_->at(key);
  if (!v.is_array()) fail(key, "must be a list of numbers");
  for (const auto& e : v) {
    if (!e.is_number()) fail(key, "must be a list of numbers");
    out.push_back(e.get<double>());
  }
  return out;
}

std::vector<int64_t> ConfigReader::get_ints(const std::string& key) const {
  std::vector<int64_t> out;
  if (!has(key)) return out;
  const auto& v = json_->at(key);
  if (!v.is_array()) fail(key, "must be a list of integers");
  for (const auto& e : v) {
    if (!e.is_number_integer()) fail(key, "must be a list of integers");
    out.push_back(e.get<int64_t>());
  }
  return out;
}

std::optional<ConfigReader> ConfigReader::object(const std::string& key) const {
  if (!has(key)) return std::nullopt;
  const auto& v = json_->at(key);
  if (!v.is_object()) fail(key, "must be an object");
  return ConfigReader(v, source_ + ":" + key);
}

}  // namespace lmx::models
