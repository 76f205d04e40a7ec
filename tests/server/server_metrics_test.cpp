// GET /metrics: Prometheus text whose counters follow what the server answered and
// generated (requests by endpoint and status, token totals equal to the responses'
// usage), and whose histograms are well formed (cumulative buckets, +Inf = count).
#include <algorithm>
#include <cmath>

#include "test_server.h"

namespace lmx::testing {
namespace {

TEST(ServerMetrics, CountersFollowTheAnswersAndHistogramsAreCumulative) {
  LMX_REQUIRE_STORIES();
  TestServer server(load_stories(), {});
  int64_t prompt = 0, generated = 0;
  for (int i = 0; i < 3; ++i) {
    const json body = {{"prompt", "Once upon"}, {"max_tokens", 5 + i}, {"temperature", 0}};
    const auto res = server.post("/v1/completions", body);
    ASSERT_TRUE(res);
    ASSERT_EQ(res->status, 200) << res->body;
    const json u = json::parse(res->body)["usage"];
    prompt += u["prompt_tokens"].get<int64_t>();
    generated += u["completion_tokens"].get<int64_t>();
  }
  const json chat = {{"messages", json::array({{{"role", "user"}, {"content", "Hi"}}})},
                     {"max_tokens", 4},
                     {"stream", true},
                     {"stream_options", {{"include_usage", true}}}};
  const auto streamed = server.post("/v1/chat/completions", chat);
  ASSERT_TRUE(streamed);
  const auto payloads = sse_payloads(streamed->body);
  ASSERT_GE(payloads.size(), 2u);
  const json usage = json::parse(payloads[payloads.size() - 2])["usage"];
  prompt += usage["prompt_tokens"].get<int64_t>();
  generated += usage["completion_tokens"].get<int64_t>();
  ASSERT_EQ(server.post("/v1/chat/completions", std::string("{")).value().status, 400);

  const auto res = server.client()->Get("/metrics");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200);
  EXPECT_EQ(res->get_header_value("Content-Type").rfind("text/plain", 0), 0u);
  auto m = parse_metrics(res->body);
  EXPECT_EQ(m[R"(lmx_requests_total{endpoint="/v1/completions",status="200"})"], 3);
  EXPECT_EQ(m[R"(lmx_requests_total{endpoint="/v1/chat/completions",status="200"})"], 1);
  EXPECT_EQ(m[R"(lmx_requests_total{endpoint="/v1/chat/completions",status="400"})"], 1);
  EXPECT_EQ(m["lmx_prompt_tokens_total"], prompt);
  EXPECT_EQ(m["lmx_generated_tokens_total"], generated);
  EXPECT_EQ(m["lmx_batch_size"], 0);
  EXPECT_EQ(m["lmx_queue_depth"], 0);
  // A request's first token comes from its prefill pass, every further one from a step.
  EXPECT_GE(m["lmx_decode_steps_total"], 6);  // the longest request (7 tokens) alone needs 6
  EXPECT_EQ(m["lmx_decode_step_rows_total"], generated - 4);  // one row-step per further token
  // Every request's prompt took at least one prefill pass; the worker's time is split.
  EXPECT_GE(m["lmx_prefill_passes_total"], 1);
  EXPECT_LE(m["lmx_prefill_passes_total"], m["lmx_prefill_tokens_total"]);
  EXPECT_GT(m["lmx_prefill_seconds_total"], 0);
  EXPECT_GT(m["lmx_decode_seconds_total"], 0);
  // One first token per request; one interval per further token.
  EXPECT_EQ(m["lmx_time_to_first_token_seconds_count"], 4);
  EXPECT_EQ(m["lmx_inter_token_latency_seconds_count"], generated - 4);
  EXPECT_EQ(m["lmx_request_duration_seconds_count"], 4);
  for (const char* h : {"lmx_time_to_first_token_seconds", "lmx_inter_token_latency_seconds",
                        "lmx_request_duration_seconds"}) {
    std::vector<std::pair<double, double>> buckets;  // (le, cumulative count)
    const std::string prefix = std::string(h) + "_bucket{le=\"";
    for (const auto& [key, value] : m) {
      if (key.rfind(prefix, 0) != 0) continue;
      const std::string le = key.substr(prefix.size(), key.size() - prefix.size() - 2);
      buckets.emplace_back(le == "+Inf" ? INFINITY : std::stod(le), value);
    }
    std::sort(buckets.begin(), buckets.end());
    ASSERT_GT(buckets.size(), 3u) << h;
    for (size_t i = 1; i < buckets.size(); ++i) EXPECT_LE(buckets[i - 1].second, buckets[i].second) << h;
    EXPECT_TRUE(std::isinf(buckets.back().first)) << h;
    EXPECT_EQ(buckets.back().second, m[std::string(h) + "_count"]) << h;
    EXPECT_GT(m[std::string(h) + "_sum"], 0) << h;
  }
}

}  // namespace
}  // namespace lmx::testing
