// The bodies of POST /v1/chat/completions and POST /v1/completions, read into the
// GenerateParameters and options of one generation. Every field is type- and
// range-checked (ApiError 400 naming it); unknown fields are ignored; fields this server
// cannot honour yet (a response_format other than text) are refused
// rather than silently dropped. n and logprobs: choice_fields.h.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "lmx/chat/tool.h"
#include "lmx/generate/generate_parameters.h"

namespace lmx::server {

// What both endpoints share.
struct SamplingRequest {
  std::string model;  // "" when the client did not name one
  generate::GenerateParameters params;
  std::vector<std::string> stop;
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage
  int64_t n = 1;               // choices (choice_fields.h)
};

enum class ToolChoice { kAuto, kNone };

struct ChatRequest : SamplingRequest {
  nlohmann::ordered_json messages;  // validated, in the form chat templates expect
  nlohmann::ordered_json tools;     // null or a non-empty array of {"type": "function", ...}
  std::vector<chat::ToolSpec> tool_specs;
  ToolChoice tool_choice = ToolChoice::kAuto;
};

struct CompletionRequest : SamplingRequest {
  std::string prompt;
};

// vocab_size bounds logit_bias token ids.
ChatRequest parse_chat_request(const std::string& body, size_t vocab_size);
CompletionRequest parse_completion_request(const std::string& body, size_t vocab_size);

}  // namespace lmx::server
