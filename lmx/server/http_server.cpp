#include "lmx/server/http_server.h"

#include <httplib.h>
#include <sys/socket.h>

#include <csignal>

#include "lmx/base/error.h"
#include "lmx/server/api_error.h"
#include "lmx/server/api_key.h"
#include "lmx/server/endpoints.h"
#include "lmx/server/web_assets.h"

namespace lmx::server {

namespace {

void send(const Reply& reply, httplib::Response& res) {
  res.status = reply.status;
  for (const auto& [name, value] : reply.headers) res.set_header(name, value);
  if (!reply.stream) {
    res.set_content(reply.body, reply.content_type);
    return;
  }
  res.set_chunked_content_provider(
      reply.content_type, [stream = reply.stream](size_t, httplib::DataSink& sink) {
        // The whole stream is written in this one call; a failed write (the client left)
        // makes the endpoint stop its generation.
        stream([&](std::string_view text) { return sink.write(text.data(), text.size()); });
        sink.done();
        return true;
      });
}

// Runs an endpoint; any exception becomes its error reply. The answer is counted under
// `endpoint` (a stream counts with the status it started with).
template <class Fn>
void answer(Endpoints& ep, const char* endpoint, httplib::Response& res, Fn&& fn) {
  Reply reply;
  try {
    reply = fn();
  } catch (...) {
    reply = Endpoints::error_reply(std::current_exception());
  }
  ep.count_request(endpoint, reply.status);
  send(reply, res);
}

}  // namespace

struct HttpServer::Impl {
  Impl(std::shared_ptr<generate::ModelContainer> model, ServerOptions opts,
       std::shared_ptr<const models::embed::Embedder> embedder)
      : options(std::move(opts)), endpoints(std::move(model), options, std::move(embedder)) {}
  ServerOptions options;
  Endpoints endpoints;
  httplib::Server http;
  int port = -1;
  int listen_fd = -1;  // the listening socket, once bind() made it
};

HttpServer::HttpServer(std::shared_ptr<generate::ModelContainer> model, ServerOptions options,
                       std::shared_ptr<const models::embed::Embedder> embedder)
    : impl_(std::make_unique<Impl>(std::move(model), std::move(options), std::move(embedder))) {
  auto& http = impl_->http;
  Endpoints& ep = impl_->endpoints;
  const ServerOptions& opts = impl_->options;
  // One thread per request that may run or wait for the model, plus a few so that
  // /health, /metrics and /v1/models answer while the queue is full.
  const size_t threads = opts.max_concurrent + opts.max_queue + 4;
  http.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  http.set_payload_max_length(opts.max_body_bytes);
  // cpp-httplib's default also sets SO_REUSEPORT, which lets a second server bind the same
  // port and silently share its connections: keep only SO_REUSEADDR (quick restarts).
  // Called for the listening socket only (before its bind): bind() raises its backlog.
  http.set_socket_options([impl = impl_.get()](socket_t sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    impl->listen_fd = sock;
  });
  http.set_pre_routing_handler([&opts](const httplib::Request& req, httplib::Response& res) {
    // The page itself holds no secret (it asks for the key and sends it with its calls).
    const bool page = req.method == "GET" && find_web_asset(req.path);
    if (opts.api_key.empty() || req.path == "/health" || page)
      return httplib::Server::HandlerResponse::Unhandled;
    if (api_key_matches(req.get_header_value("Authorization"), opts.api_key))
      return httplib::Server::HandlerResponse::Unhandled;
    res.status = 401;
    // The message never quotes what was sent (it may be a near-miss of the key).
    res.set_content(
        error_body(ApiError(401, "invalid or missing API key (send Authorization: Bearer KEY)", "",
                            "invalid_api_key")),
        "application/json");
    return httplib::Server::HandlerResponse::Handled;
  });
  http.set_error_handler([](const httplib::Request&, httplib::Response& res) {
    if (res.body.empty()) res.set_content(error_body_for_status(res.status), "application/json");
  });
  http.set_exception_handler(
      [](const httplib::Request&, httplib::Response& res, std::exception_ptr error) {
        send(Endpoints::error_reply(error), res);
      });
  http.Post("/v1/chat/completions", [&ep](const httplib::Request& req, httplib::Response& res) {
    answer(ep, "/v1/chat/completions", res, [&] { return ep.chat_completions(req.body); });
  });
  http.Post("/v1/completions", [&ep](const httplib::Request& req, httplib::Response& res) {
    answer(ep, "/v1/completions", res, [&] { return ep.completions(req.body); });
  });
  http.Post("/v1/embeddings", [&ep](const httplib::Request& req, httplib::Response& res) {
    answer(ep, "/v1/embeddings", res, [&] { return ep.embeddings(req.body); });
  });
  http.Get("/v1/models", [&ep](const httplib::Request&, httplib::Response& res) {
    answer(ep, "/v1/models", res, [&] { return ep.models(); });
  });
  // Ids may hold slashes (org/name).
  http.Get(R"(/v1/models/(.+))", [&ep](const httplib::Request& req, httplib::Response& res) {
    answer(ep, "/v1/models/{id}", res, [&] { return ep.model(req.matches[1].str()); });
  });
  // The chat page (web_assets.h): a fixed table of compiled-in files.
  http.Get(R"(/|/web/[A-Za-z0-9_.-]+)", [&ep](const httplib::Request& req, httplib::Response& res) {
    const auto asset = find_web_asset(req.path);
    if (!asset) {
      answer(ep, "/web", res, []() -> Reply { throw ApiError(404, "no such page", "", "not_found"); });
      return;
    }
    ep.count_request("/web", 200);
    res.set_header("Content-Security-Policy", std::string(kWebContentSecurityPolicy));
    res.set_header("X-Content-Type-Options", "nosniff");
    res.set_header("Cache-Control", "no-cache");
    res.set_content(std::string(asset->body), std::string(asset->content_type));
  });
  http.Get("/health", [&ep](const httplib::Request&, httplib::Response& res) {
    answer(ep, "/health", res, [&] { return ep.health(); });
  });
  http.Get("/metrics", [&ep](const httplib::Request&, httplib::Response& res) {
    answer(ep, "/metrics", res, [&] { return ep.metrics(); });
  });
}

HttpServer::~HttpServer() { stop(); }

int HttpServer::bind() {
  // cpp-httplib as Debian builds it sends without MSG_NOSIGNAL: a client that leaves
  // mid-stream must not kill the process.
  std::signal(SIGPIPE, SIG_IGN);
  const auto& o = impl_->options;
  impl_->port = o.port == 0 ? impl_->http.bind_to_any_port(o.host)
                            : (impl_->http.bind_to_port(o.host, o.port) ? o.port : -1);
  if (impl_->port < 0)
    throw IoError("cannot listen on " + o.host + ":" + std::to_string(o.port) +
                  " (address in use or not local?)");
  // cpp-httplib 0.11 listens with a backlog of 5 (compiled into Debian's library): when
  // many clients connect at once while the accept thread waits for a core (a loaded
  // machine), the kernel's accept queue overflows, handshakes are dropped and clients see
  // their connections reset (tools/bench/serve_compare.py at 32 / 64 streams). Listening
  // again on the bound socket raises the backlog to the system's limit.
  if (impl_->listen_fd < 0 || ::listen(impl_->listen_fd, SOMAXCONN) != 0)
    throw IoError("cannot raise the listen backlog on " + o.host + ":" + std::to_string(impl_->port));
  return impl_->port;
}

void HttpServer::listen() {
  if (impl_->port < 0) throw InvalidArgument("HttpServer::listen: bind() first");
  impl_->http.listen_after_bind();
}

void HttpServer::stop() { impl_->http.stop(); }

int HttpServer::port() const { return impl_->port; }

}  // namespace lmx::server
