#include "lmx/server/api_error.h"

#include <nlohmann/json.hpp>

namespace lmx::server {

ApiError::ApiError(
    int status, const std::string& message, std::string param, std::string code, std::string type)
    : Error(message),
      status_(status),
      param_(std::move(param)),
      code_(std::move(code)),
      type_(std::move(type)) {}

std::string error_body(const ApiError& e) {
  auto null_if_empty = [](const std::string& s) {
    return s.empty() ? nlohmann::ordered_json() : nlohmann::ordered_json(s);
  };
  nlohmann::ordered_json err = {{"message", e.what()},
                                {"type", e.type()},
                                {"param", null_if_empty(e.param())},
                                {"code", null_if_empty(e.code())}};
  // Messages may quote request text: never let invalid UTF-8 there stop the answer.
  return nlohmann::ordered_json{{"error", err}}.dump(
      -1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

std::string error_body_for_status(int status) {
  switch (status) {
    case 404:
      return error_body(ApiError(404, "no such endpoint", "", "not_found"));
    case 405:
      return error_body(
          ApiError(405, "method not allowed for this endpoint", "", "method_not_allowed"));
    case 413:
      return error_body(ApiError(413, "request body too large", "", "request_too_large"));
    case 401:
      return error_body(ApiError(401, "invalid API key", "", "invalid_api_key"));
    default:
      if (status >= 500)
        return error_body(ApiError(status, "internal server error", "", "", "server_error"));
      return error_body(ApiError(status, "bad request"));
  }
}

}  // namespace lmx::server
