#include "lmx/server/completion_runner.h"

#include "lmx/generate/generate.h"

namespace lmx::server {

Outcome run_completion(generate::ModelContainer& model,
                       const Prompt& prompt,
                       const SamplingRequest& request,
                       const ToolUse& tools,
                       const std::function<bool(const Delta&)>& on_delta) {
  using Kind = generate::GenerationEvent::Kind;
  generate::GenerateOptions opts;
  opts.eos_ids = model.eos_ids();
  opts.stop_strings = request.stop;
  if (prompt.templated) {
    // The processor separates reasoning always; calls only count when tools are in use
    // (otherwise their text stays content).
    opts.tool_call_format = model.tool_call_format();
    if (tools.parse_calls) opts.tool_calls.tools = tools.specs;
    opts.tool_calls.starts_in_reasoning = prompt.in_reasoning;
  }
  Outcome out;
  bool going = true;
  auto emit = [&](const Delta& d) {
    if (going) going = on_delta(d);
    return going;
  };
  model.perform([&](models::LanguageModel& lm, const tokenizer::Tokenizer& tok) {
    generate::Generation gen(lm, tok, prompt.tokens, request.params, opts);
    out.info.stop_reason = gen.run([&](const generate::GenerationEvent& e) {
      switch (e.kind) {
        case Kind::text:
          if (e.text.empty()) return true;
          out.content += e.text;
          return emit({Delta::Kind::content, e.text, {}});
        case Kind::reasoning:
          out.reasoning += e.text;
          return emit({Delta::Kind::reasoning, e.text, {}});
        case Kind::tool_call:
          if (tools.parse_calls) {
            chat::ToolCall call = e.call;
            out.calls.push_back(call);
            return emit({Delta::Kind::tool_call, "", std::move(call)});
          }
          [[fallthrough]];
        case Kind::rejected_tool_call:
          // Kept as text: nothing the model wrote is dropped.
          out.content += e.text;
          return emit({Delta::Kind::content, e.text, {}});
        case Kind::info:
          out.info = e.info;  // the stop reason is then set from run()'s answer
          return true;
        case Kind::token:
          return true;
      }
      return true;
    });
  });
  if (out.info.stop_reason == generate::StopReason::length) {
    out.finish_reason = "length";
  } else if (!out.calls.empty()) {
    out.finish_reason = "tool_calls";
  } else {
    out.finish_reason = "stop";
  }
  return out;
}

}  // namespace lmx::server
