// ApiError: a request the server refuses, answered in OpenAI's error shape
// {"error": {"message", "type", "param", "code"}} with its HTTP status.
#pragma once

#include <string>

#include "lmx/base/error.h"

namespace lmx::server {

// Part of lmx's one Error hierarchy; the status decides the answer, not the class.
class ApiError : public Error {
 public:
  // param: the request field at fault ("" when none); code: OpenAI's machine-readable
  // code ("" when none).
  ApiError(int status,
           const std::string& message,
           std::string param = "",
           std::string code = "",
           std::string type = "invalid_request_error");
  int status() const { return status_; }
  const std::string& param() const { return param_; }
  const std::string& code() const { return code_; }
  const std::string& type() const { return type_; }

 private:
  int status_;
  std::string param_, code_, type_;
};

// 400 invalid_request_error naming the field.
inline ApiError bad_field(const std::string& param, const std::string& message) {
  return ApiError(400, message, param);
}

// The JSON body of an error (empty param / code become null).
std::string error_body(const ApiError& e);
// The body for a status the HTTP layer produced itself (unknown path 404, body too large
// 413, ...).
std::string error_body_for_status(int status);

}  // namespace lmx::server
