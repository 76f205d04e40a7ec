// The one exception hierarchy of lmx. Messages name the op, file, tensor or field.
#pragma once

#include <stdexcept>
#include <string>

namespace lmx {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A caller passed a value the API does not accept (bad option, out-of-range id).
class InvalidArgument : public Error {
 public:
  using Error::Error;
};
// Shapes do not fit together (op name and shapes in the message).
class ShapeError : public InvalidArgument {
 public:
  using InvalidArgument::InvalidArgument;
};
// A file could not be opened, read, written or mapped.
class IoError : public Error {
 public:
  using Error::Error;
};
// A file's content is malformed (safetensors header, tokenizer.json, template).
class FormatError : public Error {
 public:
  using Error::Error;
};
// A feature, dtype or architecture that lmx does not support (yet).
class Unsupported : public Error {
 public:
  using Error::Error;
};
// An allocation would exceed a memory limit or failed.
class OutOfMemory : public Error {
 public:
  using Error::Error;
};
// Work was cancelled by the caller.
class Cancelled : public Error {
 public:
  using Error::Error;
};
// An internal invariant was broken: a bug in lmx, never the user's input.
class InternalError : public Error {
 public:
  using Error::Error;
};

namespace detail {
[[noreturn]] void assert_failed(const char* expr, const char* file, int line);
}  // namespace detail

}  // namespace lmx

// Internal invariants only; user input is validated with typed exceptions.
#define LMX_ASSERT(cond) \
  ((cond) ? static_cast<void>(0) : ::lmx::detail::assert_failed(#cond, __FILE__, __LINE__))
