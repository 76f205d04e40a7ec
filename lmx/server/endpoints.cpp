#include "lmx/server/endpoints.h"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <random>

#include "lmx/base/error.h"
#include "lmx/server/api_error.h"
#include "lmx/server/chat_prompt.h"
#include "lmx/server/completion_runner.h"
#include "lmx/server/output_constraint.h"
#include "lmx/server/request_parsing.h"
#include "lmx/server/response_building.h"
#include "lmx/server/sse_stream.h"

namespace lmx::server {

using json = nlohmann::ordered_json;

namespace {

int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Unique within the process and unlikely to repeat across restarts.
std::string next_id(const char* prefix) {
  static std::atomic<uint64_t> counter{std::random_device{}()};
  char buf[40];
  std::snprintf(buf, sizeof buf, "%s%016llx", prefix,
                static_cast<unsigned long long>(counter.fetch_add(1)));
  return buf;
}

Reply json_reply(const json& body) {
  Reply r;
  r.body = json_text(body);
  return r;
}

// What a stream needs after the handler returned: the request, its prompt, its place in
// the queue (held until the stream ends) and the ids its chunks share.
template <class Request>
struct StreamState {
  Request request;
  Prompt prompt;
  ToolUse tools;
  ResponseMeta meta;
  std::shared_ptr<RequestQueue::Place> place;
};

// Runs one streamed generation: to_chunk turns each delta into an event; the last
// chunk carries the finish reason, then the usage chunk (when asked) and [DONE]. An
// error once the stream has started can only be reported as an event.
template <class Request>
void pump(generate::ModelContainer& model,
          const StreamState<Request>& s,
          const char* object,
          const std::function<json(const Delta&)>& to_chunk,
          const std::function<json(const Outcome&)>& last_chunk,
          const std::function<bool(std::string_view)>& write) {
  bool client_here = true;
  try {
    const Outcome outcome =
        run_completion(model, s.prompt, s.request, s.tools,
                       [&](const Delta& d) { return client_here = write(sse_event(to_chunk(d))); });
    if (!client_here) return;
    if (!write(sse_event(last_chunk(outcome)))) return;
    if (s.request.include_usage && !write(sse_event(usage_chunk(s.meta, object, outcome.info))))
      return;
    write(kSseDone);
  } catch (...) {
    if (client_here)
      write("data: " + Endpoints::error_reply(std::current_exception()).body + "\n\n");
  }
}

Reply event_stream(std::function<void(const std::function<bool(std::string_view)>&)> fn) {
  Reply r;
  r.content_type = "text/event-stream";
  r.headers = {{"Cache-Control", "no-cache"}};
  r.stream = std::move(fn);
  return r;
}

}  // namespace

Endpoints::Endpoints(std::shared_ptr<generate::ModelContainer> model, const ServerOptions& options)
    : model_(std::move(model)),
      options_(options),
      queue_(options.max_queue),
      created_(unix_now()) {}

std::shared_ptr<RequestQueue::Place> Endpoints::admit() {
  std::shared_ptr<RequestQueue::Place> place = queue_.try_enter();
  if (!place)
    throw ApiError(503,
                   "the server is busy: " + std::to_string(options_.max_queue) +
                       " requests already wait for the model; retry later",
                   "", "server_busy", "server_error");
  return place;
}

void Endpoints::prepare_parameters(generate::GenerateParameters& params) const {
  if (!params.max_tokens) params.max_tokens = options_.default_max_tokens;
  if (options_.customize_parameters) options_.customize_parameters(params);
}

void Endpoints::check_model(const std::string& requested) const {
  if (!requested.empty() && requested != options_.model_id)
    throw ApiError(404,
                   "the model '" + requested + "' does not exist (this server serves '" +
                       options_.model_id + "')",
                   "model", "model_not_found");
}

Reply Endpoints::chat_completions(const std::string& body) {
  ChatRequest request = parse_chat_request(body, model_->tokenizer().vocab_size());
  check_model(request.model);
  prepare_parameters(request.params);
  constrain_output(*model_, request);
  ToolUse tools{request.tool_choice != ToolChoice::kNone && !request.tool_specs.empty(),
                request.tool_specs};
  Prompt prompt = chat_prompt(*model_, request.messages, request.tools);
  ResponseMeta meta{next_id("chatcmpl-"), unix_now(), options_.model_id};
  auto place = admit();
  if (!request.stream) {
    const Outcome outcome =
        run_completion(*model_, prompt, request, tools, [](const Delta&) { return true; });
    return json_reply(chat_completion(meta, outcome));
  }
  auto s = std::make_shared<StreamState<ChatRequest>>(StreamState<ChatRequest>{
      std::move(request), std::move(prompt), std::move(tools), meta, std::move(place)});
  return event_stream([model = model_, s](const std::function<bool(std::string_view)>& write) {
    if (!write(sse_event(chat_chunk(s->meta, {{"role", "assistant"}, {"content", ""}})))) return;
    size_t calls = 0;
    pump(
        *model, *s, "chat.completion.chunk",
        [&](const Delta& d) {
          switch (d.kind) {
            case Delta::Kind::content:
              return chat_chunk(s->meta, {{"content", d.text}});
            case Delta::Kind::reasoning:
              return chat_chunk(s->meta, {{"reasoning_content", d.text}});
            case Delta::Kind::tool_call:
              break;
          }
          return chat_chunk(s->meta,
                            {{"tool_calls", json::array({tool_call_json(d.call, calls++)})}});
        },
        [&](const Outcome& o) { return chat_chunk(s->meta, json::object(), o.finish_reason); },
        write);
  });
}

Reply Endpoints::completions(const std::string& body) {
  CompletionRequest request = parse_completion_request(body, model_->tokenizer().vocab_size());
  check_model(request.model);
  prepare_parameters(request.params);
  constrain_output(*model_, request);
  Prompt prompt = completion_prompt(*model_, request.prompt);
  ResponseMeta meta{next_id("cmpl-"), unix_now(), options_.model_id};
  auto place = admit();
  if (!request.stream) {
    const Outcome outcome =
        run_completion(*model_, prompt, request, {}, [](const Delta&) { return true; });
    return json_reply(text_completion(meta, outcome));
  }
  auto s = std::make_shared<StreamState<CompletionRequest>>(StreamState<CompletionRequest>{
      std::move(request), std::move(prompt), {}, meta, std::move(place)});
  return event_stream([model = model_, s](const std::function<bool(std::string_view)>& write) {
    pump(
        *model, *s, "text_completion", [&](const Delta& d) { return text_chunk(s->meta, d.text); },
        [&](const Outcome& o) { return text_chunk(s->meta, "", o.finish_reason); }, write);
  });
}

Reply Endpoints::models() const { return json_reply(model_list(options_.model_id, created_)); }

Reply Endpoints::model(const std::string& id) const {
  check_model(id);
  return json_reply(model_list(options_.model_id, created_)["data"][0]);
}

Reply Endpoints::health() const { return json_reply({{"status", "ok"}}); }

Reply Endpoints::error_reply(const std::exception_ptr& error) {
  Reply r;
  try {
    std::rethrow_exception(error);
  } catch (const ApiError& e) {
    r.status = e.status();
    r.body = error_body(e);
    if (e.status() == 503) r.headers = {{"Retry-After", "1"}};
  } catch (const InvalidArgument& e) {
    // What the model cannot take (a prompt longer than its context, ...).
    r.status = 400;
    r.body = error_body(ApiError(400, e.what()));
  } catch (const OutOfMemory& e) {
    r.status = 400;
    r.body = error_body(ApiError(400, e.what(), "", "insufficient_memory"));
  } catch (const std::exception& e) {
    r.status = 500;
    r.body = error_body(
        ApiError(500, std::string("internal error: ") + e.what(), "", "", "server_error"));
  }
  return r;
}

}  // namespace lmx::server
