// The generations of one request (its n choices) run by the batch scheduler: each
// choice's reply split into content, reasoning and tool calls, reported as it comes and
// collected for the final answer.
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "lmx/chat/tool.h"
#include "lmx/generate/batch_scheduler.h"
#include "lmx/generate/model_container.h"
#include "lmx/server/chat_prompt.h"
#include "lmx/server/metrics.h"
#include "lmx/server/request_parsing.h"

namespace lmx::server {

struct Delta {
  enum class Kind { content, reasoning, tool_call };
  Kind kind = Kind::content;
  size_t choice = 0;    // the choice's index (n > 1)
  std::string text;     // content / reasoning
  chat::ToolCall call;  // tool_call
  // With logprobs: the tokens generated since the choice's previous delta (a token's
  // text may be released later than the token, or never: stop strings, special tokens).
  std::vector<generate::TokenLogprob> logprobs;
};

struct Outcome {
  std::string content;
  std::string reasoning;
  std::vector<chat::ToolCall> calls;
  generate::GenerationInfo info;
  // OpenAI's finish_reason: "length" when cut by max_tokens (it wins over tool calls),
  // "tool_calls" when the model ended its message after calling tools, else "stop".
  std::string finish_reason;
  std::vector<generate::TokenLogprob> logprobs;  // with logprobs: every generated token but EOS
};

struct ToolUse {
  bool parse_calls = false;  // tools declared and tool_choice auto
  std::vector<chat::ToolSpec> specs;
};

// Where and how a request runs.
struct Runner {
  generate::ModelContainer& model;
  generate::BatchScheduler& scheduler;
  std::optional<std::chrono::steady_clock::duration> timeout;  // none: no deadline
  ServerMetrics* metrics = nullptr;  // token counts and latencies go here when set
};

// One outcome per choice (request.n). on_delta returns false to stop (a client that went
// away): the choices' rows leave the batch before the next decode step. A request past
// its timeout is an ApiError 504 (code "timeout"); a failed forward pass a 500.
std::vector<Outcome> run_completion(const Runner& runner,
                                    const Prompt& prompt,
                                    const SamplingRequest& request,
                                    const ToolUse& tools,
                                    const std::function<bool(const Delta&)>& on_delta);

}  // namespace lmx::server
