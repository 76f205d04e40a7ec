// The bodies of POST /v1/chat/completions and POST /v1/completions, read into the
// GenerateParameters and options of one generation. Every field is type- and
// range-checked (ApiError 400 naming it); unknown fields are ignored; fields this server
// cannot honour yet are refused rather than silently dropped. n and logprobs:
// choice_fields.h. response_format json_object / json_schema become the
// grammar the reply must follow (a bad schema is a 400 naming the place in it).
#pragma once

#include <memory>
#include <optional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "lmx/chat/tool.h"
#include "lmx/generate/constrained/constrained_decoding.h"
#include "lmx/generate/generate_parameters.h"
#include "lmx/server/chat_messages.h"

namespace lmx::server {

// What both endpoints share.
struct SamplingRequest {
  std::string model;  // "" when the client did not name one
  // mlx-lm's per-request adapters: only the server's own are taken (Endpoints::check_model).
  std::optional<std::string> adapters;
  generate::GenerateParameters params;
  std::vector<std::string> stop;
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage
  // response_format json_object / json_schema: what the reply must be (null: free text).
  std::shared_ptr<const generate::constrained::Grammar> response_grammar;
  int64_t n = 1;               // choices (choice_fields.h)
};

// auto: the model may call tools; none: calls stay text; required: the reply is one call
// of a declared tool; function: one call of the tool named in tool_choice_name.
enum class ToolChoice { kAuto, kNone, kRequired, kFunction };

struct ChatRequest : SamplingRequest {
  nlohmann::ordered_json messages;  // validated, in the form chat templates expect
  std::vector<ImagePart> images;    // the messages' image parts, in order (chat_messages.h)
  nlohmann::ordered_json tools;     // null or a non-empty array of {"type": "function", ...}
  std::vector<chat::ToolSpec> tool_specs;
  ToolChoice tool_choice = ToolChoice::kAuto;
  std::string tool_choice_name;  // kFunction
};

struct CompletionRequest : SamplingRequest {
  std::string prompt;
};

// vocab_size bounds logit_bias token ids.
ChatRequest parse_chat_request(const std::string& body, size_t vocab_size);
CompletionRequest parse_completion_request(const std::string& body, size_t vocab_size);

}  // namespace lmx::server
