// The JSON objects the endpoints answer with, in OpenAI's shapes: chat.completion,
// chat.completion.chunk, text_completion (whole and streamed, n choices), usage, the
// model list.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "lmx/server/completion_runner.h"

namespace lmx::server {

// What every object of one response shares.
struct ResponseMeta {
  std::string id;       // "chatcmpl-..." / "cmpl-..."
  int64_t created = 0;  // Unix seconds
  std::string model;
};

// Usage of a request's choices: the prompt counted once, the completions summed.
nlohmann::ordered_json usage_json(const std::vector<Outcome>& outcomes);
// {"index", "id", "type": "function", "function": {"name", "arguments": JSON text}}
nlohmann::ordered_json tool_call_json(const chat::ToolCall& call, size_t index);

// One choice per outcome (index = position). logprobs_tok set: each choice's logprobs in
// the endpoint's shape (else null).
nlohmann::ordered_json chat_completion(const ResponseMeta& meta,
                                       const std::vector<Outcome>& outcomes,
                                       const tokenizer::Tokenizer* logprobs_tok = nullptr);
// One streamed chunk of choice `index`: `delta` with finish_reason null, or the last one
// with an empty delta and the finish reason; `logprobs` the chunk's (null when none).
nlohmann::ordered_json chat_chunk(const ResponseMeta& meta,
                                  nlohmann::ordered_json delta,
                                  const std::optional<std::string>& finish_reason = std::nullopt,
                                  size_t index = 0,
                                  nlohmann::ordered_json logprobs = nullptr);
// top_logprobs: the alternatives asked per token (the legacy shape's top_logprobs).
nlohmann::ordered_json text_completion(const ResponseMeta& meta,
                                       const std::vector<Outcome>& outcomes,
                                       const tokenizer::Tokenizer* logprobs_tok = nullptr,
                                       size_t top_logprobs = 0);
nlohmann::ordered_json text_chunk(const ResponseMeta& meta,
                                  const std::string& text,
                                  const std::optional<std::string>& finish_reason = std::nullopt,
                                  size_t index = 0,
                                  nlohmann::ordered_json logprobs = nullptr);
// The stream_options.include_usage chunk: no choices, the usage.
nlohmann::ordered_json usage_chunk(const ResponseMeta& meta,
                                   const char* object,
                                   const std::vector<Outcome>& outcomes);

nlohmann::ordered_json model_list(const std::string& id, int64_t created);

// Compact JSON text; invalid UTF-8 (a model may split a character at max_tokens) is
// replaced by U+FFFD instead of failing the response.
std::string json_text(const nlohmann::ordered_json& j);

}  // namespace lmx::server
