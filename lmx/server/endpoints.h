// The API's endpoints, independent of the HTTP library: each takes a request body and
// returns a Reply, either whole or as a stream of server-sent events that the HTTP layer
// pumps (a write that fails means the client left, and the generation stops).
#pragma once

#include <functional>
#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "lmx/generate/model_container.h"
#include "lmx/server/completion_runner.h"
#include "lmx/server/image_source.h"
#include "lmx/server/metrics.h"
#include "lmx/server/request_queue.h"
#include "lmx/server/server_options.h"

namespace lmx::models::embed {
class Embedder;
}

namespace lmx::server {

struct SamplingRequest;

struct Reply {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
  // Set for a streamed reply (text/event-stream): writes every event through `write`,
  // which returns false once the client is gone.
  std::function<void(const std::function<bool(std::string_view)>& write)> stream;
};

class Endpoints {
 public:
  // embedder (optional) answers POST /v1/embeddings as options.embedding_model_id.
  Endpoints(std::shared_ptr<generate::ModelContainer> model, const ServerOptions& options,
            std::shared_ptr<const models::embed::Embedder> embedder = nullptr);
  ~Endpoints();

  Reply chat_completions(const std::string& body);
  Reply completions(const std::string& body);
  // POST /v1/embeddings (embeddings_request.h); 404 when no embedding model is served.
  Reply embeddings(const std::string& body);
  Reply models() const;
  // GET /v1/models/{id}: the served model, or 404 model_not_found.
  Reply model(const std::string& id) const;
  Reply health() const;
  // GET /metrics: Prometheus text (metrics.h).
  Reply metrics() const;
  // Counts an answered request (the HTTP layer calls it with the reply's status).
  void count_request(const std::string& endpoint, int status) { metrics_.count_request(endpoint, status); }
  // An error reply for any exception (ApiError keeps its status; lmx errors raised by a
  // request's content are 400; anything else 500 without internals).
  static Reply error_reply(const std::exception_ptr& error);

 private:
  std::shared_ptr<RequestQueue::Place> admit();
  Runner runner();
  void check_model(const std::string& requested) const;
  // The model named, and adapters named only if they are the server's own (400 otherwise).
  void check_model(const SamplingRequest& request) const;
  // The server's default token limit, then options.customize_parameters.
  void prepare_parameters(generate::GenerateParameters& params) const;
  // A chat request's images decoded and processed (image_source.h); a 400 naming the
  // first part when the model takes no images.
  RequestImages request_images(const std::vector<ImagePart>& parts) const;

  std::shared_ptr<generate::ModelContainer> model_;
  std::shared_ptr<const models::embed::Embedder> embedder_;
  std::unique_ptr<std::mutex> embed_mutex_ = std::make_unique<std::mutex>();  // one embedding batch at a time
  ServerOptions options_;
  RequestQueue queue_;
  std::shared_ptr<generate::BatchScheduler> scheduler_;
  // A vision-language model's image processor, or why there is none (text models too).
  std::shared_ptr<const vision::ImageProcessor> image_processor_;
  std::string no_images_;
  ServerMetrics metrics_;
  std::optional<std::chrono::steady_clock::duration> timeout_;
  int64_t created_;
};

}  // namespace lmx::server
