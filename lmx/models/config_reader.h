// Typed access to a model's config.json with defaults and errors that name the file
// and the field. Unknown keys are ignored, as the Python tools do.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace lmx::models {

class ConfigReader {
 public:
  ConfigReader(const nlohmann::json& json, std::string source);
  const nlohmann::json& json() const { return *json_; }
  const std::string& source() const { return source_; }

  // Present and not null.
  bool has(const std::string& key) const;
  int64_t require_int(const std::string& key) const;
  int64_t get_int(const std::string& key, int64_t fallback) const;
  double get_double(const std::string& key, double fallback) const;
  // Numbers that only make sense finite and > 0 (rope_theta, factors, scales) or
  // finite and >= 0 (epsilons, softcaps); anything else fails naming the field.
  double get_positive(const std::string& key, double fallback) const;
  double get_non_negative(const std::string& key, double fallback) const;
  bool get_bool(const std::string& key, bool fallback) const;
  std::string get_string(const std::string& key, const std::string& fallback) const;
  std::vector<double> get_doubles(const std::string& key) const;
  std::vector<int64_t> get_ints(const std::string& key) const;
  // A nested object as its own reader ("rope_parameters"); nullopt when absent.
  std::optional<ConfigReader> object(const std::string& key) const;
  [[noreturn]] void fail(const std::string& key, const std::string& what) const;

 private:
  const nlohmann::json* json_;
  std::string source_;
};

}  // namespace lmx::models
