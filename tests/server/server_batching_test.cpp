// Continuous batching through HTTP: 32 clients arriving at random times, streamed and
// whole, greedy, each reply equal to ModelContainer::generate of the same prompt alone;
// a client that leaves frees its row for the next request; a request past the server's
// timeout ends with 504.
#include <atomic>
#include <mutex>
#include <random>

#include "test_server.h"

namespace lmx::testing {
namespace {

using namespace std::chrono_literals;

std::string random_prompt(std::mt19937& rng) {
  static const char* words[] = {"Once", "upon", "a", "time", "there", "was", "little", "girl",
                                "dog", "named", "Lily", "Tim", "who", "loved", "to", "play",
                                "in", "the", "park", "sun", "big", "tree", "happy", "and"};
  std::string p;
  const int n = std::uniform_int_distribution<int>(1, 12)(rng);
  for (int i = 0; i < n; ++i) {
    if (i) p += ' ';
    p += words[std::uniform_int_distribution<size_t>(0, std::size(words) - 1)(rng)];
  }
  return p;
}

// The text of a stream's chunks (completions: choices[0].text) and its finish reason.
std::pair<std::string, std::string> stream_text(const std::string& body) {
  std::string text, finish;
  for (const auto& p : sse_payloads(body)) {
    if (p == "[DONE]") break;
    const json c = json::parse(p);
    if (c["choices"].empty()) continue;
    text += c["choices"][0]["text"].get<std::string>();
    if (!c["choices"][0]["finish_reason"].is_null()) finish = c["choices"][0]["finish_reason"];
  }
  return {text, finish};
}

TEST(ServerBatching, ThirtyTwoConcurrentGreedyClientsEachEqualGeneratingAlone) {
  LMX_REQUIRE_STORIES();
  auto model = load_stories();
  struct Client {
    std::string prompt;
    int max_tokens = 0;
    bool stream = false;
    int delay_ms = 0;
    Reference want;
    std::string text, finish;
    int status = 0;
  };
  std::mt19937 rng(2024);
  std::vector<Client> clients(32);
  for (auto& c : clients) {
    c.prompt = random_prompt(rng);
    c.max_tokens = std::uniform_int_distribution<int>(8, 80)(rng);
    c.stream = std::uniform_int_distribution<int>(0, 1)(rng) == 1;
    c.delay_ms = std::uniform_int_distribution<int>(0, 300)(rng);
    generate::GenerateParameters p;
    p.temperature = 0;
    p.max_tokens = c.max_tokens;
    generate::UserInput in;
    in.prompt = c.prompt;
    c.want = reference_generate(*model, in, p);
  }
  server::ServerOptions o;
  o.max_concurrent = 8;
  o.max_queue = 32;
  TestServer server(model, o);
  std::vector<std::thread> threads;
  for (auto& c : clients) {
    threads.emplace_back([&server, &c] {
      std::this_thread::sleep_for(std::chrono::milliseconds(c.delay_ms));
      const json body = {{"prompt", c.prompt},
                         {"max_tokens", c.max_tokens},
                         {"temperature", 0},
                         {"stream", c.stream}};
      const auto res = server.post("/v1/completions", body);
      if (!res) return;
      c.status = res->status;
      if (res->status != 200) return;
      if (c.stream) {
        std::tie(c.text, c.finish) = stream_text(res->body);
      } else {
        const json j = json::parse(res->body);
        c.text = j["choices"][0]["text"];
        c.finish = j["choices"][0]["finish_reason"];
      }
    });
  }
  for (auto& t : threads) t.join();
  for (size_t i = 0; i < clients.size(); ++i) {
    const Client& c = clients[i];
    SCOPED_TRACE("client " + std::to_string(i) + " '" + c.prompt + "'" + (c.stream ? " streamed" : ""));
    ASSERT_EQ(c.status, 200);
    EXPECT_EQ(c.text, c.want.text);
    EXPECT_EQ(c.finish, c.want.info.stop_reason == generate::StopReason::length ? "length" : "stop");
  }
}

TEST(ServerBatching, ClientThatLeavesFreesItsRow) {
  LMX_REQUIRE_STORIES();
  // One row, no queue: the next request can only run once the abandoned stream left.
  server::ServerOptions o;
  o.max_concurrent = 1;
  o.max_queue = 0;
  std::atomic<int> steps{0};
  o.customize_parameters = [&](generate::GenerateParameters& p) {
    p.logits_processors.push_back([&](const std::vector<int32_t>&, std::vector<float>& logits) {
      ++steps;
      logits[2] = -1e30f;  // no EOS: only the limit or the cancellation ends it
      std::this_thread::sleep_for(2ms);
    });
  };
  TestServer server(load_stories(), o);
  const json body = {{"prompt", "Once"}, {"max_tokens", 100000}, {"stream", true}, {"temperature", 0}};
  const std::string got =
      send_and_leave(server.port(), http_post_text("/v1/completions", body.dump()), "\"text\":\"");
  ASSERT_NE(got.find("data: "), std::string::npos) << got;
  // Within a few steps of the failed write the row is free.
  int status = 0;
  for (int attempt = 0; attempt < 200 && status != 200; ++attempt) {
    const auto next = server.post("/v1/completions", json{{"prompt", "Once"}, {"max_tokens", 3}});
    status = next ? next->status : 0;
    if (status == 503) std::this_thread::sleep_for(10ms);
  }
  EXPECT_EQ(status, 200);
  EXPECT_LT(steps.load(), 1000) << "the abandoned stream ran on";
}

TEST(ServerBatching, RequestPastTheTimeoutEndsWith504AndFreesItsRow) {
  LMX_REQUIRE_STORIES();
  server::ServerOptions o;
  o.max_concurrent = 1;
  o.max_queue = 0;
  o.request_timeout_seconds = 0.3;
  o.customize_parameters = [](generate::GenerateParameters& p) {
    p.logits_processors.push_back([](const std::vector<int32_t>&, std::vector<float>& logits) {
      logits[2] = -1e30f;
      std::this_thread::sleep_for(1ms);
    });
  };
  TestServer server(load_stories(), o);
  const auto t0 = std::chrono::steady_clock::now();
  const auto res = server.post("/v1/completions", json{{"prompt", "Once"}, {"max_tokens", 100000}});
  const json e = expect_openai_error(res, 504);
  EXPECT_EQ(e["code"], "timeout");
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 10s);
  const auto next = server.post("/v1/completions", json{{"prompt", "Once"}, {"max_tokens", 3}});
  ASSERT_TRUE(next);
  EXPECT_EQ(next->status, 200) << next->body;
}

}  // namespace
}  // namespace lmx::testing
