#include "lmx/server/completion_runner.h"

#include "lmx/base/error.h"
#include "lmx/server/api_error.h"

namespace lmx::server {

std::vector<Outcome> run_completion(const Runner& runner,
                                    const Prompt& prompt,
                                    const SamplingRequest& request,
                                    const ToolUse& tools,
                                    const std::function<bool(const Delta&)>& on_delta) {
  using Kind = generate::GenerationEvent::Kind;
  const bool logprobs = request.params.logprobs || request.params.top_logprobs > 0;
  generate::ScheduledRequest base;
  base.prompt = prompt.tokens;
  base.images = prompt.images;
  base.identity = prompt.identity;
  base.params = request.params;
  base.options.eos_ids = runner.model.eos_ids();
  base.options.stop_strings = request.stop;
  base.options.token_events = true;  // timed for the metrics; their logprobs when asked
  if (prompt.templated) {
    // The processor separates reasoning always; calls only count when tools are in use
    // (otherwise their text stays content).
    base.options.tool_call_format = runner.model.tool_call_format();
    if (tools.parse_calls) base.options.tool_calls.tools = tools.specs;
    base.options.tool_calls.starts_in_reasoning = prompt.in_reasoning;
  }
  const size_t n = static_cast<size_t>(request.n);
  std::vector<generate::ScheduledRequest> choices(n, base);
  for (size_t i = 0; i < n; ++i)
    if (base.params.seed) choices[i].params.seed = *base.params.seed + i;  // n distinct, repeatable draws
  std::optional<std::chrono::steady_clock::time_point> deadline;
  if (runner.timeout) deadline = std::chrono::steady_clock::now() + *runner.timeout;
  const auto admitted = std::chrono::steady_clock::now();
  auto group = runner.scheduler.submit(std::move(choices), deadline);
  std::vector<std::optional<std::chrono::steady_clock::time_point>> last_token(n);
  auto time_token = [&](size_t i, std::chrono::steady_clock::time_point at) {
    if (!runner.metrics) return;
    const auto since = at - last_token[i].value_or(admitted);
    (last_token[i] ? runner.metrics->inter_token : runner.metrics->time_to_first_token)
        .observe(std::chrono::duration<double>(since).count());
    last_token[i] = at;
  };

  std::vector<Outcome> out(n);
  std::vector<std::vector<generate::TokenLogprob>> unsent(n);  // logprobs not yet in a delta
  bool going = true;
  auto emit = [&](Delta d) {
    d.logprobs = std::move(unsent[d.choice]);
    unsent[d.choice].clear();
    if (going && !on_delta(d)) {
      going = false;
      group->cancel();  // the rows leave before the next step
    }
  };
  while (going) {
    auto item = group->next();
    if (!item) break;
    const size_t i = item->index;
    generate::GenerationEvent& e = item->event;
    Outcome& o = out[i];
    switch (e.kind) {
      case Kind::token:
        time_token(i, item->at);
        if (logprobs && !base.options.eos_ids.count(e.token.token)) {
          o.logprobs.push_back(e.token);
          unsent[i].push_back(e.token);
        }
        break;
      case Kind::text:
        if (e.text.empty()) break;
        o.content += e.text;
        emit({Delta::Kind::content, i, e.text, {}, {}});
        break;
      case Kind::reasoning:
        o.reasoning += e.text;
        emit({Delta::Kind::reasoning, i, e.text, {}, {}});
        break;
      case Kind::tool_call:
        if (tools.parse_calls) {
          o.calls.push_back(e.call);
          emit({Delta::Kind::tool_call, i, "", e.call, {}});
          break;
        }
        [[fallthrough]];
      case Kind::rejected_tool_call:
        // Kept as text: nothing the model wrote is dropped.
        o.content += e.text;
        emit({Delta::Kind::content, i, e.text, {}, {}});
        break;
      case Kind::info:
        o.info = e.info;
        // Tokens whose text never came (a stop string, special tokens) still count.
        if (!unsent[i].empty()) emit({Delta::Kind::content, i, "", {}, {}});
        break;
    }
  }
  if (runner.metrics) {
    int64_t generated = 0;
    for (const Outcome& o : out) generated += o.info.generated_tokens;
    runner.metrics->add_tokens(static_cast<int64_t>(prompt.tokens.size()), generated);
    runner.metrics->request_duration.observe(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - admitted).count());
  }
  if (!going) {
    if (runner.metrics) runner.metrics->count_cancelled();
    return out;
  }
  if (group->timed_out())
    throw ApiError(504, "the request ran past the server's timeout", "", "timeout", "server_error");
  if (const std::string error = group->error(); !error.empty()) {
    if (group->out_of_memory()) throw OutOfMemory(error);  // 400 insufficient_memory
    throw std::runtime_error("generation failed: " + error);
  }
  for (Outcome& o : out) {
    if (o.info.stop_reason == generate::StopReason::length) {
      o.finish_reason = "length";
    } else if (!o.calls.empty()) {
      o.finish_reason = "tool_calls";
    } else {
      o.finish_reason = "stop";
    }
  }
  return out;
}

}  // namespace lmx::server
