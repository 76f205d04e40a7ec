// A parsed Jinja template with the semantics Hugging Face transformers uses for chat
// templates (sandboxed, trim_blocks, lstrip_blocks, loopcontrols, `generation` tag,
// tojson / raise_exception / strftime_now). Parse once, render many times; rendering
// is thread-safe (a parsed template is immutable).
#pragma once

#include <cstdint>
#include <ctime>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "lmx/chat/value.h"

namespace lmx::chat {

namespace detail {
struct ParsedTemplate;
}

struct RenderLimits {
  int max_depth = 100;                      // nested macro calls / recursive loops
  int64_t max_loop_iterations = 10'000'000;  // all loop iterations of one render
  size_t max_output_bytes = 16u << 20;      // any rendered string, output included
  double max_seconds = 5.0;                 // wall time of one render
};

struct RenderOptions {
  RenderLimits limits;
  // What strftime_now() formats; the local time of the call when unset.
  std::optional<std::tm> now;
};

class Template {
 public:
  // Throws TemplateSyntaxError (line, column) for malformed templates.
  explicit Template(std::string_view source);

  // `context` is a dict Value of top-level variables (messages, tools, ...).
  // Throws TemplateRuntimeError (and subclasses) or TemplateRaisedError.
  std::string render(const Value& context, const RenderOptions& options = {}) const;

 private:
  std::shared_ptr<const detail::ParsedTemplate> parsed_;
};

}  // namespace lmx::chat
