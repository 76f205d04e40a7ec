// libFuzzer target: the Jinja engine (lexer, parser, renderer with its filters, tests and
// methods) on arbitrary template text, rendered with a chat-like context under tight
// render limits (depth, loop iterations, output bytes, wall time).
#include <nlohmann/json.hpp>

#include "lmx/chat/json_value.h"
#include "lmx/chat/template.h"
#include "tests/fuzz/fuzz_target.h"

namespace {

const lmx::chat::Value& context() {
  static const lmx::chat::Value value = lmx::chat::value_from_json(nlohmann::ordered_json::parse(R"({
    "messages": [
      {"role": "system", "content": "Be brief."},
      {"role": "user", "content": "What is 2+2? <b>&amp;</b>"},
      {"role": "assistant", "content": "",
       "tool_calls": [{"type": "function", "function": {"name": "add", "arguments": {"a": 2, "b": 2}}}]},
      {"role": "tool", "content": "4"},
      {"role": "user", "content": [{"type": "text", "text": "thanks"}, {"type": "image"}]}
    ],
    "tools": [{"type": "function", "function": {"name": "add", "description": "adds",
               "parameters": {"type": "object", "properties": {"a": {"type": "integer"}}}}}],
    "bos_token": "<s>", "eos_token": "</s>", "add_generation_prompt": true,
    "enable_thinking": false, "n": 3, "x": 1.5, "none": null
  })"));
  return value;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return lmx::fuzz::guarded([&] {
    lmx::chat::Template tmpl(lmx::fuzz::as_text(data, size));
    lmx::chat::RenderOptions options;
    options.limits.max_depth = 20;
    options.limits.max_loop_iterations = 100'000;
    options.limits.max_output_bytes = 1u << 20;
    options.limits.max_seconds = 1.0;
    options.now = std::tm{};
    (void)tmpl.render(context(), options);
  });
}
