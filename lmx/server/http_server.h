// HttpServer: the endpoints of endpoints.h on HTTP/1.1 (cpp-httplib, kept out of this
// header), with the API key check, the body-size limit and OpenAI-shaped errors for
// everything the HTTP layer refuses itself (unknown paths, bodies too large).
//
//   POST /v1/chat/completions   POST /v1/completions   GET /v1/models[/{id}]   GET /health
//   GET /metrics   POST /v1/embeddings (with an embedding model)
//
// Requests that need the model are decoded together by a batch scheduler (up to
// options.max_concurrent); up to options.max_queue wait, the next ones get 503 +
// Retry-After.
#pragma once

#include <memory>

#include "lmx/generate/model_container.h"
#include "lmx/server/server_options.h"

namespace lmx::models::embed {
class Embedder;
}

namespace lmx::server {

class HttpServer {
 public:
  // embedder (optional): answers POST /v1/embeddings as options.embedding_model_id.
  HttpServer(std::shared_ptr<generate::ModelContainer> model, ServerOptions options,
             std::shared_ptr<const models::embed::Embedder> embedder = nullptr);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds options.host:options.port (port 0: any free port); returns the port. IoError
  // naming the address when it cannot be bound.
  int bind();
  // Serves until stop() (from any thread). bind() first.
  void listen();
  void stop();
  int port() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace lmx::server
