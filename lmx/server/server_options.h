// How `lmx serve` (or an app embedding the server) runs it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

#include "lmx/generate/generate_parameters.h"

namespace lmx::server {

struct ServerOptions {
  std::string host = "127.0.0.1";           // loopback unless asked otherwise
  int port = 8080;                          // 0: any free port (HttpServer::bind() says which)
  std::string model_id;                     // the name /v1/models lists and requests may give
  std::string adapter_path;                 // the adapters attached at start-up (--adapter-path); "" none
  std::string embedding_model_id;           // the name of the embedding model (--embedding-model)
  size_t max_embedding_inputs = 2048;       // inputs per /v1/embeddings request (OpenAI's limit)
  std::string api_key;                      // empty: no authentication
  size_t max_concurrent = 8;                // sequences decoded together (continuous batching)
  size_t max_queue = 8;                     // requests waiting for a free row; more get 503
  size_t max_body_bytes = size_t{8} << 20;  // larger bodies get 413
  // Vision-language models: image_url parts per chat request, pixels per image (checked
  // before decoding), and the directory whose files requests may name (empty: none; only
  // base64 data: URLs then). docs/server.md.
  size_t max_images = 8;
  int64_t max_image_pixels = int64_t{1} << 24;
  std::string image_dir;
  // The byte budget of the prefix cache shared across requests (the keys and values of
  // prompt blocks already prefilled; docs/server.md); 0: none.
  size_t prefix_cache_bytes = size_t{1} << 30;
  // Also reuse the shared start of a cached block (SchedulerOptions::prefix_partial_blocks):
  // a repeated prompt (the same chat resent, a retry) runs its last token only before its
  // first token. What a request reuses then depends on which earlier replies were stored.
  bool prefix_cache_partial_blocks = true;
  // > 0: wired-memory admission (docs/wired-memory.md). The model's weights plus the KV
  // caches of the running sequences must fit this many bytes: a request whose KV bytes
  // (its prompt + max_tokens) do not fit beside those running waits in the queue until
  // enough of them end, and one that could never fit gets 400 insufficient_memory. The
  // tickets go to the process-wide manager, which keeps that much memory wired (mlock on
  // the CPU) while requests run.
  size_t memory_budget_bytes = 0;
  // The token limit of a request that sets none: generation has no context bound of its
  // own, so a model that never writes EOS would otherwise hold the model forever.
  int64_t default_max_tokens = 4096;
  // > 0: a request still generating this many seconds after it was admitted ends (504
  // timeout, or an error event when streaming) and frees its rows.
  double request_timeout_seconds = 0;
  // Called on each request's parameters before it runs: where an embedding app adds
  // logits processors (constraints, scripted replies in tests) or clamps settings.
  // Called from the HTTP threads, possibly several at once.
  std::function<void(generate::GenerateParameters&)> customize_parameters;
};

}  // namespace lmx::server
