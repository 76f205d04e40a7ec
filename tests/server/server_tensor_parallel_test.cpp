// A split model served (lmx serve --tensor-parallel, issue 24): stories260K over 2 ranks
// (threads on the CPU) answers concurrent greedy requests, streamed and whole, batched by
// the scheduler (rows joining and leaving the split batch caches) and with the prefix
// cache (a second round seeds the split caches from the whole model's layout), each with
// the text the whole (unsplit) model generates for that prompt alone.
#include "test_server.h"

namespace lmx::testing {
namespace {

TEST(ServerTensorParallel, ConcurrentGreedyRepliesOfASplitModelEqualTheWholeModels) {
  LMX_REQUIRE_STORIES();
  auto whole = load_stories();
  auto split = load_stories("", {.tensor_parallel = 2});
  const std::vector<std::string> prompts = {
      "Once upon a time",
      "Lily and Tim went to the park to play with a big red ball. They were happy and",
      "The dog",
      "Once upon a time, there was a little girl named Lily. She loved to play outside in the sun with",
      "Tim saw a big tree",
      "Once upon a time, there was a little girl named Lily. She loved to eat cake",
  };
  struct Client {
    std::string want, text;
    int status = 0;
  };
  std::vector<Client> clients(prompts.size());
  for (size_t i = 0; i < prompts.size(); ++i) {
    generate::GenerateParameters p;
    p.temperature = 0;
    p.max_tokens = 24 + 8 * static_cast<int>(i);
    generate::UserInput in;
    in.prompt = prompts[i];
    clients[i].want = reference_generate(*whole, in, p).text;
  }
  server::ServerOptions o;
  o.max_concurrent = 4;  // six clients: rows leave and others join the running batch
  o.max_queue = 16;
  o.prefix_cache_bytes = size_t{8} << 20;
  TestServer server(split, o);
  for (int round = 0; round < 2; ++round) {  // the second round finds the prompts' blocks cached
    std::vector<std::thread> threads;
    for (size_t i = 0; i < prompts.size(); ++i) {
      threads.emplace_back([&, i] {
        const bool stream = i % 2 == 1;
        const json body = {{"prompt", prompts[i]}, {"max_tokens", 24 + 8 * static_cast<int>(i)},
                           {"temperature", 0}, {"stream", stream}};
        const auto res = server.post("/v1/completions", body);
        Client& c = clients[i];
        c.status = res ? res->status : 0;
        c.text.clear();
        if (!res || res->status != 200) return;
        if (!stream) {
          c.text = json::parse(res->body)["choices"][0]["text"];
          return;
        }
        for (const auto& p : sse_payloads(res->body)) {
          if (p == "[DONE]") break;
          const json chunk = json::parse(p);
          if (!chunk["choices"].empty()) c.text += chunk["choices"][0]["text"].get<std::string>();
        }
      });
    }
    for (auto& t : threads) t.join();
    for (size_t i = 0; i < clients.size(); ++i) {
      EXPECT_EQ(clients[i].status, 200) << "round " << round << ", client " << i;
      EXPECT_EQ(clients[i].text, clients[i].want) << "round " << round << ", client " << i;
    }
  }
  const auto metrics = httplib::Client("127.0.0.1", server.port()).Get("/metrics");
  ASSERT_TRUE(metrics);
  EXPECT_GT(parse_metrics(metrics->body)["lmx_prefix_cache_hits_total"], 0) << metrics->body;
}

}  // namespace
}  // namespace lmx::testing
