#include "lmx/server/response_building.h"

namespace lmx::server {

using json = nlohmann::ordered_json;

namespace {

json null_or(const std::optional<std::string>& s) { return s ? json(*s) : json(); }

json header(const ResponseMeta& meta, const char* object) {
  return {{"id", meta.id}, {"object", object}, {"created", meta.created}, {"model", meta.model}};
}

}  // namespace

json usage_json(const generate::GenerationInfo& info) {
  const int64_t prompt = info.prompt_tokens + info.cached_prompt_tokens;
  return {{"prompt_tokens", prompt},
          {"completion_tokens", info.generated_tokens},
          {"total_tokens", prompt + info.generated_tokens}};
}

json tool_call_json(const chat::ToolCall& call, size_t index) {
  return {{"index", index},
          {"id", call.id},
          {"type", "function"},
          {"function", {{"name", call.name}, {"arguments", json_text(call.arguments)}}}};
}

json chat_completion(const ResponseMeta& meta, const Outcome& outcome) {
  json message = {{"role", "assistant"}};
  message["content"] =
      outcome.content.empty() && !outcome.calls.empty() ? json() : json(outcome.content);
  if (!outcome.reasoning.empty()) message["reasoning_content"] = outcome.reasoning;
  if (!outcome.calls.empty()) {
    message["tool_calls"] = json::array();
    for (size_t i = 0; i < outcome.calls.size(); ++i) {
      json c = tool_call_json(outcome.calls[i], i);
      c.erase("index");  // only streamed calls carry an index
      message["tool_calls"].push_back(std::move(c));
    }
  }
  json out = header(meta, "chat.completion");
  out["choices"] = json::array({{{"index", 0},
                                 {"message", std::move(message)},
                                 {"logprobs", nullptr},
                                 {"finish_reason", outcome.finish_reason}}});
  out["usage"] = usage_json(outcome.info);
  return out;
}

json chat_chunk(const ResponseMeta& meta,
                json delta,
                const std::optional<std::string>& finish_reason) {
  json out = header(meta, "chat.completion.chunk");
  out["choices"] = json::array({{{"index", 0},
                                 {"delta", std::move(delta)},
                                 {"logprobs", nullptr},
                                 {"finish_reason", null_or(finish_reason)}}});
  return out;
}

json text_completion(const ResponseMeta& meta, const Outcome& outcome) {
  json out = header(meta, "text_completion");
  out["choices"] = json::array({{{"index", 0},
                                 {"text", outcome.content},
                                 {"logprobs", nullptr},
                                 {"finish_reason", outcome.finish_reason}}});
  out["usage"] = usage_json(outcome.info);
  return out;
}

json text_chunk(const ResponseMeta& meta,
                const std::string& text,
                const std::optional<std::string>& finish_reason) {
  json out = header(meta, "text_completion");
  out["choices"] = json::array({{{"index", 0},
                                 {"text", text},
                                 {"logprobs", nullptr},
                                 {"finish_reason", null_or(finish_reason)}}});
  return out;
}

json usage_chunk(const ResponseMeta& meta,
                 const char* object,
                 const generate::GenerationInfo& info) {
  json out = header(meta, object);
  out["choices"] = json::array();
  out["usage"] = usage_json(info);
  return out;
}

json model_list(const std::string& id, int64_t created) {
  return {{"object", "list"},
          {"data",
           json::array(
               {{{"id", id}, {"object", "model"}, {"created", created}, {"owned_by", "lmx"}}})}};
}

std::string json_text(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

}  // namespace lmx::server
