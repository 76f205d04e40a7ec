// Errors raised while parsing or rendering a chat template.
#pragma once

#include <string>

#include "lmx/base/error.h"

namespace lmx::chat {

// The template text is malformed; line and column are 1-based.
class TemplateSyntaxError : public FormatError {
 public:
  TemplateSyntaxError(const std::string& message, int line, int column)
      : FormatError("template syntax error at line " + std::to_string(line) + ", column " +
                    std::to_string(column) + ": " + message),
        line_(line),
        column_(column),
        message_(message) {}
  int line() const { return line_; }
  int column() const { return column_; }
  const std::string& message() const { return message_; }

 private:
  int line_;
  int column_;
  std::string message_;
};

// Rendering failed: type errors, undefined values used, unknown filters.
class TemplateRuntimeError : public Error {
 public:
  TemplateRuntimeError(const std::string& message, int line)
      : Error(line > 0 ? "template error at line " + std::to_string(line) + ": " + message
                       : "template error: " + message),
        line_(line),
        message_(message) {}
  int line() const { return line_; }
  const std::string& message() const { return message_; }

 private:
  int line_;
  std::string message_;
};

// Access to internals the sandbox forbids (`__class__`, mutating methods, ...).
class TemplateSecurityError : public TemplateRuntimeError {
 public:
  using TemplateRuntimeError::TemplateRuntimeError;
};

// A render limit was hit: recursion depth, loop iterations, output size, wall time.
class TemplateLimitError : public TemplateRuntimeError {
 public:
  using TemplateRuntimeError::TemplateRuntimeError;
};

// The template called raise_exception(message); what() is exactly that message,
// as transformers surfaces it.
class TemplateRaisedError : public Error {
 public:
  explicit TemplateRaisedError(const std::string& message) : Error(message) {}
};

}  // namespace lmx::chat
