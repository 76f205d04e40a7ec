// lmx serve: the OpenAI-compatible HTTP server (lmx/server) over one loaded model.
#include <pthread.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <thread>

#include "cli_common.h"
#include "commands.h"
#include "lmx/base/error.h"
#include "lmx/core/ops/linalg.h"
#include "lmx/generate/model_container.h"
#include "lmx/models/embed/embedder.h"
#include "lmx/server/http_server.h"

namespace lmx::cli {
namespace {

struct ServeArgs {
  std::string model;
  std::string adapter_path;
  std::string model_id;
  std::string embedding_model;
  server::ServerOptions server;
  int threads = 0;
  std::string device = "cpu";
  int tensor_parallel = 1;
  std::string quant_activations;  // empty: LMX_QUANT_ACTIVATIONS if set, else int8
};

// The server's activation precision for quantized matmuls. int8 unless asked otherwise:
// a server's batched decode steps are compute-bound, where int8 x does half the integer
// work of int16 (docs/server.md, "Activation precision").
void apply_quant_activations(const std::string& asked) {
  std::string v = asked;
  if (v.empty()) {
    const char* env = std::getenv("LMX_QUANT_ACTIVATIONS");
    v = env ? env : "int8";
  }
  if (v == "int8") {
    ops::set_quant_activations(ops::QuantActivations::int8);
  } else if (v == "int16") {
    ops::set_quant_activations(ops::QuantActivations::int16);
  } else if (v == "f32") {
    ops::set_quant_activations(ops::QuantActivations::f32);
  } else {
    throw InvalidArgument("--quant-activations must be int8, int16 or f32, got '" + v + "'");
  }
}

const char* quant_activations_name() {
  switch (ops::quant_activations()) {
    case ops::QuantActivations::int8: return "int8";
    case ops::QuantActivations::int16: return "int16";
    default: return "f32";
  }
}

bool is_loopback(const std::string& host) {
  return host == "127.0.0.1" || host == "localhost" || host == "::1" || host.rfind("127.", 0) == 0;
}

void run_serve(ServeArgs a) {
  // SIGINT / SIGTERM are taken by one thread (sigwait) that stops the server; blocked
  // before any other thread starts (compute pool included), so the HTTP workers inherit the mask.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  // Before the server runs (loading), a stop signal ends the process as Ctrl-C would.
  static std::atomic<server::HttpServer*> running{nullptr};
  std::thread([stop_signals] {
    int sig = 0;
    sigwait(&stop_signals, &sig);
    if (server::HttpServer* s = running.load()) {
      s->stop();
    } else {
      std::_Exit(128 + sig);
    }
  }).detach();
  apply_threads(a.threads);
  apply_quant_activations(a.quant_activations);
  const Device device = device_arg(a.device);
  if (a.server.port < 0 || a.server.port > 65535)
    throw InvalidArgument("--port must be in [0, 65535]");
  if (a.server.max_body_bytes == 0) throw InvalidArgument("--max-body-bytes must be > 0");
  if (a.server.default_max_tokens < 1) throw InvalidArgument("--max-tokens must be >= 1");
  // Each waiting request holds an HTTP thread.
  if (a.server.max_queue > 1024) throw InvalidArgument("--max-queue must be at most 1024");
  if (a.server.max_concurrent < 1 || a.server.max_concurrent > 256)
    throw InvalidArgument("--max-concurrent must be in [1, 256]");
  if (!(a.server.request_timeout_seconds >= 0)) throw InvalidArgument("--timeout must be >= 0");

  models::LoadOptions load_options;
  load_options.device = device;
  load_options.tensor_parallel = a.tensor_parallel;
  auto container = load_model_with_adapters(a.model, load_options, a.adapter_path);
  a.server.model_id = a.model_id.empty() ? a.model : a.model_id;
  a.server.adapter_path = a.adapter_path;
  std::shared_ptr<const models::embed::Embedder> embedder;
  if (!a.embedding_model.empty()) {
    models::embed::EmbedderOptions embed_options;
    embed_options.device = device;
    embedder = std::make_shared<const models::embed::Embedder>(
        models::embed::Embedder::load(resolve_model_arg(a.embedding_model), embed_options));
    a.server.embedding_model_id = a.embedding_model;
  }
  server::HttpServer http(container, a.server, embedder);
  const int port = http.bind();
  if (!is_loopback(a.server.host) && a.server.api_key.empty())
    std::fprintf(stderr, "lmx serve: warning: listening on %s without --api-key\n",
                 a.server.host.c_str());
  std::fprintf(stderr,
               "lmx serve: %s%s%s on http://%s:%d (POST /v1/chat/completions, POST /v1/completions, "
               "GET /v1/models, GET /health, GET /metrics%s; the chat page at /); %s activations in "
               "quantized matmuls; Ctrl-C stops\n",
               a.server.model_id.c_str(), a.adapter_path.empty() ? "" : " with the adapters of ",
               a.adapter_path.c_str(), a.server.host.c_str(), port,
               embedder ? ", POST /v1/embeddings" : "", quant_activations_name());
  running = &http;
  http.listen();
  running = nullptr;
}

}  // namespace

void add_serve_command(CLI::App& app) {
  auto a = std::make_shared<ServeArgs>();
  auto* cmd = app.add_subcommand(
      "serve", "OpenAI-compatible HTTP server (chat/completions, completions, models)");
  cmd->add_option("-m,--model", a->model, "Model folder or Hugging Face repo id")->required();
  add_adapter_path_option(cmd, a->adapter_path);
  cmd->add_option("--embedding-model", a->embedding_model,
                  "Sentence-transformers folder (or repo id) that answers POST /v1/embeddings");
  cmd->add_option("--model-id", a->model_id,
                  "The model name clients use (default: the --model text)");
  cmd->add_option("--host", a->server.host, "Address to listen on")->capture_default_str();
  cmd->add_option("--port", a->server.port, "Port (0: any free port)")->capture_default_str();
  cmd->add_option("--api-key", a->server.api_key,
                  "Require Authorization: Bearer KEY (or set LMX_API_KEY)")
      ->envname("LMX_API_KEY");
  cmd->add_option("--max-concurrent", a->server.max_concurrent,
                  "Requests decoded together in one batch (continuous batching)")
      ->capture_default_str();
  cmd->add_option("--max-queue", a->server.max_queue,
                  "Requests that may wait for a free batch row; more get 503")
      ->capture_default_str();
  cmd->add_option("--timeout", a->server.request_timeout_seconds,
                  "Seconds a request may run before it ends with 504 (0: no limit)")
      ->capture_default_str();
  cmd->add_option("--max-tokens", a->server.default_max_tokens,
                  "Token limit of requests that set none")
      ->capture_default_str();
  cmd->add_option("--max-body-bytes", a->server.max_body_bytes,
                  "Largest request body; larger get 413")
      ->capture_default_str();
  cmd->add_option("--prefix-cache-bytes", a->server.prefix_cache_bytes,
                  "Memory for the keys / values of prompt prefixes shared across requests (0: no prefix cache)")
      ->check([](const std::string& v) {  // a negative count would wrap to an unbounded size_t
        return v.find('-') == std::string::npos ? std::string() : std::string("must be a byte count >= 0");
      })
      ->capture_default_str();
  cmd->add_option("--memory-budget", a->server.memory_budget_bytes,
                  "Bytes for the weights plus the running requests' KV caches: requests that do not fit "
                  "wait for others to end (wired-memory admission; 0: off)")
      ->check([](const std::string& v) {
        return v.find('-') == std::string::npos ? std::string() : std::string("must be a byte count >= 0");
      })
      ->capture_default_str();
  cmd->add_option("--max-images", a->server.max_images,
                  "Vision-language models: image_url parts a chat request may hold")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  cmd->add_option("--max-image-pixels", a->server.max_image_pixels,
                  "Vision-language models: largest width x height of a request's image (checked before decoding)")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd->add_option("--image-dir", a->server.image_dir,
                  "Vision-language models: a directory whose image files requests may name by absolute path or "
                  "file:// URL (default: none; only base64 data: URLs)")
      ->check(CLI::ExistingDirectory);
  cmd->add_option("-t,--threads", a->threads, "CPU threads (default: all cores)");
  cmd->add_option("--quant-activations", a->quant_activations,
                  "Activation precision of quantized matmuls on the CPU: int8 (default: half the integer work of "
                  "int16 in batched steps, as llama.cpp's Q8 activations), int16 (lmx generate's default) or f32; "
                  "default LMX_QUANT_ACTIVATIONS when set")
      ->check(CLI::IsMember({"int8", "int16", "f32"}));
  add_device_option(cmd, a->device);
  add_tensor_parallel_option(cmd, a->tensor_parallel);
  cmd->callback([a] { run_serve(*a); });
}

}  // namespace lmx::cli
