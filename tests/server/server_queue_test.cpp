// Admission and cancellation: with every row busy and no queue, a request gets 503 +
// Retry-After while the running one finishes normally, and a client that leaves
// mid-stream stops its generation within a few tokens.
#include <atomic>
#include <nlohmann/json.hpp>
#include <optional>

#include <fcntl.h>
#include <poll.h>

#include "test_server.h"

namespace lmx::testing {
namespace {

using namespace std::chrono_literals;

// Polls `done` every 5 ms for at most `limit`.
template <class Fn>
bool wait_for(Fn done, std::chrono::milliseconds limit) {
  const auto end = std::chrono::steady_clock::now() + limit;
  while (!done()) {
    if (std::chrono::steady_clock::now() > end) return false;
    std::this_thread::sleep_for(5ms);
  }
  return true;
}

json chat(int64_t max_tokens, bool stream = false) {
  return {{"messages", json::array({{{"role", "user"}, {"content", "Once"}}})},
          {"max_tokens", max_tokens},
          {"temperature", 0},
          {"stream", stream}};
}

TEST(ServerQueue, FullQueueAnswers503WithRetryAfterAndKeepsServing) {
  LMX_REQUIRE_STORIES();
  // The first request's first step waits until the test lets it go.
  std::atomic<bool> started{false}, release{false};
  server::ServerOptions o;
  o.max_concurrent = 1;
  o.max_queue = 0;
  o.customize_parameters = [&](generate::GenerateParameters& p) {
    p.logits_processors.push_back([&](const std::vector<int32_t>&, std::vector<float>&) {
      started = true;
      wait_for([&] { return release.load(); }, 20000ms);
    });
  };
  TestServer server(load_stories(), o);
  std::optional<httplib::Result> first;
  std::thread running([&] { first.emplace(server.post("/v1/chat/completions", chat(3))); });
  if (!wait_for([&] { return started.load(); }, 20000ms)) {
    release = true;
    running.join();
    FAIL() << "the first request never reached its first step";
  }

  const auto busy = server.post("/v1/chat/completions", chat(3));
  const json e = expect_openai_error(busy, 503);
  EXPECT_EQ(e["type"], "server_error");
  EXPECT_EQ(e["code"], "server_busy");
  EXPECT_EQ(busy->get_header_value("Retry-After"), "1");
  // Endpoints that do not need the model still answer.
  const auto health = server.client()->Get("/health");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200);

  release = true;
  running.join();
  ASSERT_TRUE(first && *first);
  EXPECT_EQ((*first)->status, 200) << (*first)->body;
  EXPECT_EQ(json::parse((*first)->body)["usage"]["completion_tokens"], 3);
  const auto after = server.post("/v1/chat/completions", chat(3));
  ASSERT_TRUE(after);
  EXPECT_EQ(after->status, 200) << after->body;
}

TEST(ServerQueue, ClientLeavingMidStreamCancelsItsGeneration) {
  LMX_REQUIRE_STORIES();
  // Each request counts its sampling steps; EOS is banned so that only max_tokens or
  // the cancellation ends it, and each step takes a few ms so the stream outlives the
  // client.
  std::mutex mutex;
  std::vector<std::shared_ptr<std::atomic<int>>> steps;
  server::ServerOptions o;
  o.customize_parameters = [&](generate::GenerateParameters& p) {
    auto count = std::make_shared<std::atomic<int>>(0);
    {
      std::lock_guard<std::mutex> lock(mutex);
      steps.push_back(count);
    }
    p.logits_processors.push_back([count](const std::vector<int32_t>&, std::vector<float>& logits) {
      ++*count;
      logits[2] = -1e30f;
      std::this_thread::sleep_for(3ms);
    });
  };
  TestServer server(load_stories(), o);
  const int kMaxTokens = 400;
  const std::string got = send_and_leave(
      server.port(), http_post_text("/v1/chat/completions", chat(kMaxTokens, true).dump()),
      "\"content\":\"");
  ASSERT_NE(got.find("data: "), std::string::npos) << got;

  // The model is free for the next request, which runs to its end.
  const auto next = server.post("/v1/chat/completions", chat(5));
  ASSERT_TRUE(next);
  EXPECT_EQ(next->status, 200) << next->body;
  EXPECT_EQ(json::parse(next->body)["usage"]["completion_tokens"], 5);
  // The abandoned stream may run beside it (batched) until its next write fails: wait
  // until its count stops moving.
  std::shared_ptr<std::atomic<int>> abandoned;
  {
    std::lock_guard<std::mutex> lock(mutex);
    ASSERT_EQ(steps.size(), 2u);
    abandoned = steps[0];
  }
  for (int last = -1; last != abandoned->load();) {
    last = abandoned->load();
    std::this_thread::sleep_for(100ms);
  }
  std::lock_guard<std::mutex> lock(mutex);
  // The abandoned stream stopped after a few tokens, far from its 400.
  EXPECT_LT(steps[0]->load(), kMaxTokens / 4) << "steps run for the abandoned stream";
  EXPECT_EQ(steps[1]->load(), 5);
  // /metrics counts it as cancelled (the finished one is not).
  const auto m = server.client()->Get("/metrics");
  ASSERT_TRUE(m);
  EXPECT_NE(m->body.find("\nlmx_requests_cancelled_total 1\n"), std::string::npos) << m->body;
}

TEST(ServerQueue, RequestsWithoutALimitStopAtTheServerDefault) {
  LMX_REQUIRE_STORIES();
  // EOS banned: only the limit ends these generations.
  server::ServerOptions o;
  o.default_max_tokens = 9;
  o.customize_parameters = [](generate::GenerateParameters& p) {
    p.logits_processors.push_back(
        [](const std::vector<int32_t>&, std::vector<float>& logits) { logits[2] = -1e30f; });
  };
  TestServer server(load_stories(), o);
  json body = chat(1);
  body.erase("max_tokens");
  const auto unset = server.post("/v1/chat/completions", body);
  ASSERT_TRUE(unset);
  ASSERT_EQ(unset->status, 200) << unset->body;
  EXPECT_EQ(json::parse(unset->body)["usage"]["completion_tokens"], 9);
  EXPECT_EQ(json::parse(unset->body)["choices"][0]["finish_reason"], "length");
  // A request's own limit wins, above the default too.
  const auto own = server.post("/v1/chat/completions", chat(20));
  ASSERT_TRUE(own);
  EXPECT_EQ(json::parse(own->body)["usage"]["completion_tokens"], 20);
}

// --memory-budget: a request whose KV bytes fit beside the weights runs (and /metrics
// shows nothing admitted once it ended); with a budget below the weights alone nothing
// could ever fit: 400 insufficient_memory, and the server keeps answering.
TEST(ServerQueue, MemoryBudgetAdmitsWhatFitsAndRefusesWhatNeverCan) {
  LMX_REQUIRE_STORIES();
  auto model = load_stories();
  {
    server::ServerOptions o;
    o.memory_budget_bytes = size_t{64} << 20;  // stories260K: ~1 MB of weights, KBs of KV
    TestServer server(model, o);
    const auto ok = server.post("/v1/chat/completions", chat(5));
    ASSERT_TRUE(ok);
    EXPECT_EQ(ok->status, 200) << ok->body;
    const auto m = server.client()->Get("/metrics");
    ASSERT_TRUE(m);
    EXPECT_NE(m->body.find("\nlmx_admitted_kv_bytes 0\n"), std::string::npos) << m->body;
  }
  server::ServerOptions o;
  o.memory_budget_bytes = 1000;
  TestServer server(model, o);
  const json e = expect_openai_error(server.post("/v1/chat/completions", chat(5)), 400);
  EXPECT_EQ(e["code"], "insufficient_memory");
  EXPECT_NE(e["message"].get<std::string>().find("wired memory"), std::string::npos) << e;
  EXPECT_EQ(server.client()->Get("/health")->status, 200);
}

}  // namespace
}  // namespace lmx::testing

namespace lmx::testing {
namespace {

// Many clients connecting at once while nothing accepts (the accept thread waiting for a
// core on a loaded machine): the kernel must hold every handshake in the listen backlog
// (cpp-httplib's own backlog of 5 dropped them, and clients saw their connections reset:
// serve_compare.py at 32 streams), and each is answered once the server accepts again.
TEST(ServerQueue, ConnectionsArrivingBeforeAcceptAllWaitInTheBacklog) {
  using namespace std::chrono_literals;
  LMX_REQUIRE_STORIES();
  server::ServerOptions o;
  o.host = "127.0.0.1";
  o.port = 0;
  o.model_id = "stories260K";
  server::HttpServer server(load_stories(), o);
  const int port = server.bind();  // listening, but nothing accepts yet
  constexpr int kClients = 40;
  std::vector<int> fds;
  for (int i = 0; i < kClients; ++i) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);  // EINPROGRESS
    fds.push_back(fd);
  }
  std::this_thread::sleep_for(300ms);
  int established = 0;
  for (int fd : fds) {
    pollfd p{fd, POLLOUT, 0};
    int err = -1;
    socklen_t len = sizeof err;
    if (::poll(&p, 1, 0) == 1 && ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0) ++established;
  }
  EXPECT_EQ(established, kClients) << "handshakes completed before the server accepted";
  std::thread serving([&] { server.listen(); });
  int answered = 0;
  for (int fd : fds) {
    const int flags = ::fcntl(fd, F_GETFL);
    ::fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
    timeval tv{10, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    const std::string req = "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    std::string got;
    if (::send(fd, req.data(), req.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(req.size())) {
      char buf[1024];
      for (ssize_t n; (n = ::recv(fd, buf, sizeof buf, 0)) > 0;) got.append(buf, static_cast<size_t>(n));
    }
    if (got.rfind("HTTP/1.1 200", 0) == 0) ++answered;
    ::close(fd);
  }
  EXPECT_EQ(answered, kClients);
  server.stop();
  serving.join();
}

}  // namespace
}  // namespace lmx::testing
