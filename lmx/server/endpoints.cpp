#include "lmx/server/endpoints.h"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <limits>
#include <random>

#include "lmx/base/error.h"
#include "lmx/generate/wired_memory_estimate.h"
#include "lmx/models/vlm/vision_language_model.h"
#include "lmx/server/api_error.h"
#include "lmx/models/embed/embedder.h"
#include "lmx/server/chat_prompt.h"
#include "lmx/server/completion_runner.h"
#include "lmx/server/embeddings_request.h"
#include "lmx/server/logprobs_json.h"
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

generate::SchedulerOptions scheduler_options(generate::ModelContainer& model, const ServerOptions& options) {
  generate::SchedulerOptions o;
  o.max_concurrent = options.max_concurrent;
  o.prefix_cache_bytes = options.prefix_cache_bytes;
  o.prefix_partial_blocks = options.prefix_cache_partial_blocks;
  if (options.memory_budget_bytes > 0) {
    // The weights are the policy's base: the budget covers them and the running KV caches.
    const size_t weights = generate::estimate_memory(model.model(), 1, {}).weight_bytes;
    o.admission_policy =
        std::make_shared<generate::BudgetPolicy>(weights, options.memory_budget_bytes, "lmx-serve");
  }
  return o;
}

Reply json_reply(const json& body) {
  Reply r;
  r.body = json_text(body);
  return r;
}

// What a stream needs after the handler returned: the request, its prompt, its place in
// the queue (held until the stream ends), the ids its chunks share and where it runs.
template <class Request>
struct StreamState {
  Request request;
  Prompt prompt;
  ToolUse tools;
  ResponseMeta meta;
  std::shared_ptr<RequestQueue::Place> place;
  std::shared_ptr<generate::ModelContainer> model;
  std::shared_ptr<generate::BatchScheduler> scheduler;
  std::optional<std::chrono::steady_clock::duration> timeout;
  ServerMetrics* metrics = nullptr;  // the Endpoints', which outlive the server's streams
};

// Runs one streamed request: to_chunk turns each delta into an event; each choice's last
// chunk carries its finish reason, then the usage chunk (when asked) and [DONE]. An
// error once the stream has started can only be reported as an event.
template <class Request>
void pump(const StreamState<Request>& s,
          const char* object,
          const std::function<json(const Delta&)>& to_chunk,
          const std::function<json(size_t, const Outcome&)>& last_chunk,
          const std::function<bool(std::string_view)>& write) {
  bool client_here = true;
  try {
    const std::vector<Outcome> outcomes = run_completion(
        {*s.model, *s.scheduler, s.timeout, s.metrics}, s.prompt, s.request, s.tools,
        [&](const Delta& d) { return client_here = write(sse_event(to_chunk(d))); });
    if (!client_here) return;
    for (size_t k = 0; k < outcomes.size(); ++k)
      if (!write(sse_event(last_chunk(k, outcomes[k])))) return;
    if (s.request.include_usage && !write(sse_event(usage_chunk(s.meta, object, outcomes))))
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

Endpoints::Endpoints(std::shared_ptr<generate::ModelContainer> model, const ServerOptions& options,
                     std::shared_ptr<const models::embed::Embedder> embedder)
    : model_(std::move(model)),
      embedder_(std::move(embedder)),
      options_(options),
      queue_(options.max_concurrent, options.max_queue),
      scheduler_(std::make_shared<generate::BatchScheduler>(model_, scheduler_options(*model_, options))),
      created_(unix_now()) {
  if (!dynamic_cast<const models::vlm::VisionLanguageModel*>(&model_->model())) {
    no_images_ = "the model '" + options_.model_id + "' takes no images (it is not a vision-language model)";
  } else if (!model_->has_chat_template()) {
    no_images_ = "the model '" + options_.model_id + "' has no chat template to place images with";
  } else {
    try {
      image_processor_ = vision::load_image_processor(model_->folder().path());
    } catch (const Error& e) {
      no_images_ = "the model '" + options_.model_id + "' has no usable image processor: " + e.what();
    }
  }
  if (options.request_timeout_seconds > 0)
    timeout_ = std::chrono::duration_cast<std::chrono::steady_clock::duration>(
        std::chrono::duration<double>(options.request_timeout_seconds));
}

Endpoints::~Endpoints() = default;

Runner Endpoints::runner() { return {*model_, *scheduler_, timeout_, &metrics_}; }

std::shared_ptr<RequestQueue::Place> Endpoints::admit() {
  std::shared_ptr<RequestQueue::Place> place = queue_.try_enter();
  if (!place)
    throw ApiError(503,
                   "the server is busy: " + std::to_string(options_.max_concurrent) +
                       " requests run and " + std::to_string(options_.max_queue) +
                       " already wait; retry later",
                   "", "server_busy", "server_error");
  return place;
}

void Endpoints::prepare_parameters(generate::GenerateParameters& params) const {
  if (!params.max_tokens) params.max_tokens = options_.default_max_tokens;
  if (options_.customize_parameters) options_.customize_parameters(params);
}

RequestImages Endpoints::request_images(const std::vector<ImagePart>& parts) const {
  if (parts.empty()) return {};
  if (!image_processor_) throw ApiError(400, "'" + parts[0].param + "': " + no_images_, parts[0].param, "images_not_supported");
  ImageSourceLimits limits;
  limits.max_images = options_.max_images;
  limits.max_pixels = options_.max_image_pixels;
  limits.image_dir = options_.image_dir;
  return load_request_images(parts, *image_processor_, limits);
}

void Endpoints::check_model(const std::string& requested) const {
  if (!requested.empty() && requested != options_.model_id)
    throw ApiError(404,
                   "the model '" + requested + "' does not exist (this server serves '" +
                       options_.model_id + "')",
                   "model", "model_not_found");
}

void Endpoints::check_model(const SamplingRequest& request) const {
  check_model(request.model);
  if (request.adapters && *request.adapters != options_.adapter_path) {
    throw ApiError(400,
                   "per-request adapters are not supported: this server serves " +
                       (options_.adapter_path.empty() ? std::string("no adapters")
                                                      : "the adapters of '" + options_.adapter_path + "'") +
                       " (lmx serve --adapter-path)",
                   "adapters");
  }
}

Reply Endpoints::chat_completions(const std::string& body) {
  ChatRequest request = parse_chat_request(body, model_->tokenizer().vocab_size());
  check_model(request);
  prepare_parameters(request.params);
  constrain_output(*model_, request);
  ToolUse tools{request.tool_choice != ToolChoice::kNone && !request.tool_specs.empty(),
                request.tool_specs};
  Prompt prompt = chat_prompt(*model_, request.messages, request.tools, request_images(request.images));
  ResponseMeta meta{next_id("chatcmpl-"), unix_now(), options_.model_id};
  auto place = admit();
  const tokenizer::Tokenizer* logprobs_tok = request.params.logprobs ? &model_->tokenizer() : nullptr;
  if (!request.stream) {
    const auto outcomes =
        run_completion(runner(), prompt, request, tools, [](const Delta&) { return true; });
    return json_reply(chat_completion(meta, outcomes, logprobs_tok));
  }
  auto s = std::make_shared<StreamState<ChatRequest>>(
      StreamState<ChatRequest>{std::move(request), std::move(prompt), std::move(tools), meta,
                               std::move(place), model_, scheduler_, timeout_, &metrics_});
  return event_stream([s, logprobs_tok](const std::function<bool(std::string_view)>& write) {
    const size_t n = static_cast<size_t>(s->request.n);
    for (size_t k = 0; k < n; ++k)
      if (!write(sse_event(
              chat_chunk(s->meta, {{"role", "assistant"}, {"content", ""}}, std::nullopt, k))))
        return;
    std::vector<size_t> calls(n, 0);
    pump(
        *s, "chat.completion.chunk",
        [&](const Delta& d) {
          json logprobs = logprobs_tok ? chat_logprobs_json(*logprobs_tok, d.logprobs) : json();
          json delta;
          switch (d.kind) {
            case Delta::Kind::content:
              delta = {{"content", d.text}};
              break;
            case Delta::Kind::reasoning:
              delta = {{"reasoning_content", d.text}};
              break;
            case Delta::Kind::tool_call:
              delta = {{"tool_calls", json::array({tool_call_json(d.call, calls[d.choice]++)})}};
              break;
          }
          return chat_chunk(s->meta, std::move(delta), std::nullopt, d.choice, std::move(logprobs));
        },
        [&](size_t k, const Outcome& o) {
          return chat_chunk(s->meta, json::object(), o.finish_reason, k);
        },
        write);
  });
}

Reply Endpoints::completions(const std::string& body) {
  CompletionRequest request = parse_completion_request(body, model_->tokenizer().vocab_size());
  check_model(request);
  prepare_parameters(request.params);
  constrain_output(*model_, request);
  Prompt prompt = completion_prompt(*model_, request.prompt);
  ResponseMeta meta{next_id("cmpl-"), unix_now(), options_.model_id};
  auto place = admit();
  const tokenizer::Tokenizer* logprobs_tok = request.params.logprobs ? &model_->tokenizer() : nullptr;
  const size_t top = static_cast<size_t>(request.params.top_logprobs);
  if (!request.stream) {
    const auto outcomes =
        run_completion(runner(), prompt, request, {}, [](const Delta&) { return true; });
    return json_reply(text_completion(meta, outcomes, logprobs_tok, top));
  }
  auto s = std::make_shared<StreamState<CompletionRequest>>(StreamState<CompletionRequest>{
      std::move(request), std::move(prompt), {}, meta, std::move(place), model_, scheduler_, timeout_, &metrics_});
  return event_stream([s, logprobs_tok, top](const std::function<bool(std::string_view)>& write) {
    std::vector<size_t> offsets(static_cast<size_t>(s->request.n), 0);  // legacy text_offset
    pump(
        *s, "text_completion",
        [&](const Delta& d) {
          json logprobs;
          if (logprobs_tok) {
            logprobs = completion_logprobs_json(*logprobs_tok, d.logprobs, top, offsets[d.choice]);
            if (!d.logprobs.empty())
              offsets[d.choice] = logprobs["text_offset"].back().get<size_t>() +
                                  logprobs["tokens"].back().get<std::string>().size();
          }
          return text_chunk(s->meta, d.text, std::nullopt, d.choice, std::move(logprobs));
        },
        [&](size_t k, const Outcome& o) { return text_chunk(s->meta, "", o.finish_reason, k); },
        write);
  });
}

Reply Endpoints::embeddings(const std::string& body) {
  if (!embedder_) {
    throw ApiError(404, "this server has no embedding model (start lmx serve with --embedding-model DIR)", "model",
                   "model_not_found");
  }
  const models::embed::Embedder& e = *embedder_;
  const int64_t vocab = e.has_tokenizer() ? e.tokenizer().vocab_size() : std::numeric_limits<int32_t>::max();
  EmbeddingsRequest request = parse_embeddings_request(body, vocab, options_.max_embedding_inputs);
  if (!request.model.empty() && request.model != options_.embedding_model_id) {
    throw ApiError(404,
                   "the model '" + request.model + "' does not exist (this server embeds with '" +
                       options_.embedding_model_id + "')",
                   "model", "model_not_found");
  }
  if (request.dimensions > e.dimension()) {
    throw ApiError(400, "dimensions " + std::to_string(request.dimensions) + " is more than the model's " +
                            std::to_string(e.dimension()),
                   "dimensions");
  }
  // Inputs past the model's limit are refused (sentence-transformers would cut them).
  int64_t tokens = 0;
  auto count = [&](size_t i, size_t n) {
    if (static_cast<int64_t>(n) > e.max_length()) {
      throw ApiError(400, "input[" + std::to_string(i) + "] is " + std::to_string(n) + " tokens; the model takes at most " +
                              std::to_string(e.max_length()),
                     "input");
    }
    tokens += static_cast<int64_t>(n);
  };
  if (!request.texts.empty() && !e.has_tokenizer())
    throw ApiError(400, "the embedding model has no tokenizer: send token ids", "input");
  for (size_t i = 0; i < request.texts.size(); ++i) count(i, e.tokenizer().encode_full(request.texts[i]).ids.size());
  for (size_t i = 0; i < request.token_ids.size(); ++i) count(i, request.token_ids[i].size());
  models::embed::EmbedOptions o;
  o.dimensions = request.dimensions;
  std::lock_guard<std::mutex> lock(*embed_mutex_);
  const models::embed::Embeddings out =
      request.texts.empty() ? e.embed_tokens(request.token_ids, o) : e.embed(request.texts, o);
  return json_reply(embeddings_response(out.values, request.base64, options_.embedding_model_id, tokens));
}

Reply Endpoints::models() const { return json_reply(model_list(options_.model_id, created_)); }

Reply Endpoints::model(const std::string& id) const {
  check_model(id);
  return json_reply(model_list(options_.model_id, created_)["data"][0]);
}

Reply Endpoints::health() const { return json_reply({{"status", "ok"}}); }

Reply Endpoints::metrics() const {
  Reply r;
  r.content_type = "text/plain; version=0.0.4";
  r.body = metrics_.render(scheduler_->stats(), queue_.in_flight());
  return r;
}

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
