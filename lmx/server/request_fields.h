// Typed reads of a request's JSON fields: absent or null fields give nullopt, a value of
// the wrong type or outside its range throws ApiError (400) naming the field. Fields a
// reader is never asked about are ignored (OpenAI clients send many we do not use).
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

namespace lmx::server {

class RequestFields {
 public:
  // `prefix` names nested objects in errors ("stream_options.").
  explicit RequestFields(const nlohmann::ordered_json& object, std::string prefix = "");

  const nlohmann::ordered_json* get(const char* name) const;  // null when absent or null
  std::optional<bool> boolean(const char* name) const;
  std::optional<double> number(const char* name, double lo, double hi) const;
  std::optional<int64_t> integer(const char* name, int64_t lo, int64_t hi) const;
  std::optional<std::string> string(const char* name) const;
  const nlohmann::ordered_json* object(const char* name) const;
  const nlohmann::ordered_json* array(const char* name) const;
  std::string param(const char* name) const { return prefix_ + name; }

 private:
  const nlohmann::ordered_json& object_;
  std::string prefix_;
};

// Parses a request body; malformed JSON (invalid UTF-8 included) and anything but an
// object are 400s.
nlohmann::ordered_json parse_body(const std::string& body);

}  // namespace lmx::server
