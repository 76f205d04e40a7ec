#include "lmx/server/response_building.h"

#include "lmx/server/logprobs_json.h"

namespace lmx::server {

using json = nlohmann::ordered_json;

namespace {

json null_or(const std::optional<std::string>& s) { return s ? json(*s) : json(); }

json header(const ResponseMeta& meta, const char* object) {
  return {{"id", meta.id}, {"object", object}, {"created", meta.created}, {"model", meta.model}};
}

}  // namespace

json usage_json(const std::vector<Outcome>& outcomes) {
  int64_t prompt = 0, completion = 0;
  for (const Outcome& o : outcomes) {
    prompt = o.info.prompt_tokens + o.info.cached_prompt_tokens;
    completion += o.info.generated_tokens;
  }
  // The prompt counts once, as the first choice (prefilled first) saw it.
  const int64_t cached = outcomes.empty() ? 0 : outcomes.front().info.cached_prompt_tokens;
  return {{"prompt_tokens", prompt},
          {"completion_tokens", completion},
          {"total_tokens", prompt + completion},
          {"prompt_tokens_details", {{"cached_tokens", cached}}}};
}

json tool_call_json(const chat::ToolCall& call, size_t index) {
  return {{"index", index},
          {"id", call.id},
          {"type", "function"},
          {"function", {{"name", call.name}, {"arguments", json_text(call.arguments)}}}};
}

json chat_completion(const ResponseMeta& meta,
                     const std::vector<Outcome>& outcomes,
                     const tokenizer::Tokenizer* logprobs_tok) {
  json choices = json::array();
  for (size_t k = 0; k < outcomes.size(); ++k) {
    const Outcome& outcome = outcomes[k];
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
    choices.push_back(
        {{"index", k},
         {"message", std::move(message)},
         {"logprobs", logprobs_tok ? chat_logprobs_json(*logprobs_tok, outcome.logprobs) : json()},
         {"finish_reason", outcome.finish_reason}});
  }
  json out = header(meta, "chat.completion");
  out["choices"] = std::move(choices);
  out["usage"] = usage_json(outcomes);
  return out;
}

json chat_chunk(const ResponseMeta& meta,
                json delta,
                const std::optional<std::string>& finish_reason,
                size_t index,
                json logprobs) {
  json out = header(meta, "chat.completion.chunk");
  out["choices"] = json::array({{{"index", index},
                                 {"delta", std::move(delta)},
                                 {"logprobs", std::move(logprobs)},
                                 {"finish_reason", null_or(finish_reason)}}});
  return out;
}

json text_completion(const ResponseMeta& meta,
                     const std::vector<Outcome>& outcomes,
                     const tokenizer::Tokenizer* logprobs_tok,
                     size_t top_logprobs) {
  json choices = json::array();
  for (size_t k = 0; k < outcomes.size(); ++k) {
    const Outcome& o = outcomes[k];
    choices.push_back(
        {{"index", k},
         {"text", o.content},
         {"logprobs",
          logprobs_tok ? completion_logprobs_json(*logprobs_tok, o.logprobs, top_logprobs) : json()},
         {"finish_reason", o.finish_reason}});
  }
  json out = header(meta, "text_completion");
  out["choices"] = std::move(choices);
  out["usage"] = usage_json(outcomes);
  return out;
}

json text_chunk(const ResponseMeta& meta,
                const std::string& text,
                const std::optional<std::string>& finish_reason,
                size_t index,
                json logprobs) {
  json out = header(meta, "text_completion");
  out["choices"] = json::array({{{"index", index},
                                 {"text", text},
                                 {"logprobs", std::move(logprobs)},
                                 {"finish_reason", null_or(finish_reason)}}});
  return out;
}

json usage_chunk(const ResponseMeta& meta, const char* object, const std::vector<Outcome>& outcomes) {
  json out = header(meta, object);
  out["choices"] = json::array();
  out["usage"] = usage_json(outcomes);
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
