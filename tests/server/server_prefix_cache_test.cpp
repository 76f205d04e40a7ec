// The prefix cache through HTTP: requests sharing a system text, whole and streamed,
// answer exactly what a server without the cache answers (text, log-probabilities to
// float rounding); usage.prompt_tokens_details.cached_tokens is the longest common
// prefix with the prompts served before (tokenized here) as far as they stored (their
// prompts and replies: the server keeps partial blocks); /metrics counts the hits, the
// reused tokens and the prefill tokens actually run.
#include <random>

#include "../generate/cached_prefix.h"
#include "test_server.h"

namespace lmx::testing {
namespace {

constexpr int64_t kBlock = 16;  // PrefixKVStore::kDefaultBlockTokens

struct Reply {
  std::string text;
  std::vector<float> logprobs;
  json usage;
};

// A completion, whole or streamed (with the usage chunk); legacy logprobs when whole.
Reply complete(const TestServer& server, const std::string& prompt, int max_tokens, bool stream) {
  json body = {{"prompt", prompt}, {"max_tokens", max_tokens}, {"temperature", 0}};
  if (stream) {
    body["stream"] = true;
    body["stream_options"] = {{"include_usage", true}};
  } else {
    body["logprobs"] = 1;
  }
  const auto res = server.post("/v1/completions", body);
  Reply r;
  if (!res || res->status != 200) {
    ADD_FAILURE() << (res ? res->body : "no answer");
    return r;
  }
  if (!stream) {
    const json j = json::parse(res->body);
    r.text = j["choices"][0]["text"];
    for (const auto& l : j["choices"][0]["logprobs"]["token_logprobs"])
      r.logprobs.push_back(l.get<float>());
    r.usage = j["usage"];
    return r;
  }
  for (const auto& p : sse_payloads(res->body)) {
    if (p == "[DONE]") break;
    const json c = json::parse(p);
    if (c.contains("usage") && !c["usage"].is_null()) r.usage = c["usage"];
    if (!c["choices"].empty()) r.text += c["choices"][0]["text"].get<std::string>();
  }
  return r;
}

std::string random_words(std::mt19937& rng, int min_words, int max_words) {
  static const char* words[] = {"Once", "upon",  "a",    "time", "there", "was",   "little", "girl",
                                "dog",  "named", "Lily", "Tim",  "who",   "loved", "to",     "play",
                                "in",   "the",   "park", "sun",  "big",   "tree",  "happy",  "and"};
  std::string p;
  const int n = std::uniform_int_distribution<int>(min_words, max_words)(rng);
  for (int i = 0; i < n; ++i)
    p += std::string(" ") +
         words[std::uniform_int_distribution<size_t>(0, std::size(words) - 1)(rng)];
  return p;
}

TEST(ServerPrefixCache, SharedPrefixesAnswerAsWithoutTheCacheAndReportCachedTokens) {
  LMX_REQUIRE_STORIES();
  auto model = load_stories();
  server::ServerOptions off;
  off.prefix_cache_bytes = 0;
  TestServer plain(model, off);
  TestServer cached(model, {});  // the default budget
  std::mt19937 rng(21);
  const std::string systems[] = {"Once upon a time" + random_words(rng, 20, 30),
                                 "Tim" + random_words(rng, 25, 40)};
  std::vector<std::string> texts;
  for (int i = 0; i < 12; ++i) texts.push_back(systems[i % 2] + random_words(rng, 1, 8));
  texts.push_back(texts[4]);  // an exact repeat
  std::vector<std::vector<int32_t>> prompts;
  std::vector<size_t> held;  // per request: its prompt and reply but the last token
  int64_t all = 0, reused = 0, hits = 0;
  for (size_t i = 0; i < texts.size(); ++i) {
    prompts.push_back(model->tokenizer().encode(texts[i], true));
    const bool stream = i % 3 == 2;
    const int max_tokens = std::uniform_int_distribution<int>(5, 40)(rng);
    const Reply want = complete(plain, texts[i], max_tokens, stream);
    const Reply got = complete(cached, texts[i], max_tokens, stream);
    EXPECT_EQ(got.text, want.text) << "request " << i;
    ASSERT_EQ(got.logprobs.size(), want.logprobs.size());
    // Float rounding of another prefill chunking only (see
    // tests/generate/prefix_kv_store_test.cpp).
    for (size_t k = 0; k < want.logprobs.size(); ++k)
      EXPECT_NEAR(got.logprobs[k], want.logprobs[k], 1e-4) << i;
    const auto prompt_tokens = static_cast<int64_t>(prompts[i].size());
    EXPECT_EQ(got.usage["prompt_tokens"], prompt_tokens);
    EXPECT_EQ(want.usage["prompt_tokens_details"]["cached_tokens"], 0);
    const int64_t expected = expected_cached_tokens_partial(prompts, i, held);
    EXPECT_EQ(got.usage["prompt_tokens_details"]["cached_tokens"], expected)
        << "request " << i << (stream ? " (streamed)" : "");
    held.push_back(static_cast<size_t>(prompt_tokens + got.usage["completion_tokens"].get<int64_t>() - 1));
    all += prompt_tokens;
    reused += expected;
    hits += expected > 0;
  }
  EXPECT_GT(reused, all / 3) << "the workload should mostly hit";
  auto metrics = [](const TestServer& s) {
    return parse_metrics(s.client()->Get("/metrics")->body);
  };
  const auto m = metrics(cached);
  EXPECT_EQ(m.at("lmx_prefix_cache_lookups_total"), static_cast<double>(texts.size()));
  EXPECT_EQ(m.at("lmx_prefix_cache_hits_total"), static_cast<double>(hits));
  EXPECT_EQ(m.at("lmx_prefix_cache_reused_tokens_total"), static_cast<double>(reused));
  EXPECT_EQ(m.at("lmx_prefix_cache_evictions_total"), 0.0);
  EXPECT_GT(m.at("lmx_prefix_cache_bytes"), 0.0);
  EXPECT_GT(m.at("lmx_prefix_cache_blocks"), 0.0);
  // The counted speed effect: the cached server ran only the tokens it did not reuse.
  EXPECT_EQ(m.at("lmx_prefill_tokens_total"), static_cast<double>(all - reused));
  const auto p = metrics(plain);
  EXPECT_EQ(p.at("lmx_prefill_tokens_total"), static_cast<double>(all));
  EXPECT_EQ(p.at("lmx_prefix_cache_lookups_total"), 0.0);
  EXPECT_EQ(p.at("lmx_prefix_cache_bytes"), 0.0);
}

// The same chat twice: the second reuses its whole prompt but the last token (which
// must run to give the first logits) and answers the same; streamed, the usage chunk
// says so too.
TEST(ServerPrefixCache, ARepeatedChatReusesItsPromptAndAnswersTheSame) {
  LMX_REQUIRE_STORIES();
  TestServer server(load_stories(), {});
  json body = {
      {"messages", json::array({{{"role", "system"},
                                 {"content",
                                  "You tell short stories about a dog named Max and a girl named "
                                  "Lily who live near a big park."}},
                                {{"role", "user"}, {"content", "Tell me about the park."}}})},
      {"max_tokens", 30},
      {"temperature", 0}};
  const auto first = server.post("/v1/chat/completions", body);
  const auto second = server.post("/v1/chat/completions", body);
  ASSERT_TRUE(first && second);
  ASSERT_EQ(first->status, 200) << first->body;
  const json a = json::parse(first->body), b = json::parse(second->body);
  EXPECT_EQ(b["choices"][0]["message"]["content"], a["choices"][0]["message"]["content"]);
  const int64_t prompt_tokens = a["usage"]["prompt_tokens"];
  ASSERT_GT(prompt_tokens, 2 * kBlock);
  EXPECT_EQ(a["usage"]["prompt_tokens_details"]["cached_tokens"], 0);
  EXPECT_EQ(b["usage"]["prompt_tokens"], prompt_tokens);
  const int64_t reused = prompt_tokens - 1;
  EXPECT_EQ(b["usage"]["prompt_tokens_details"]["cached_tokens"], reused);
  body["stream"] = true;
  body["stream_options"] = {{"include_usage", true}};
  const auto streamed = server.post("/v1/chat/completions", body);
  ASSERT_TRUE(streamed);
  const auto payloads = sse_payloads(streamed->body);
  ASSERT_GE(payloads.size(), 2u);
  const json usage = json::parse(payloads[payloads.size() - 2])["usage"];
  EXPECT_EQ(usage["prompt_tokens_details"]["cached_tokens"], reused);
  std::string text;
  for (const auto& p : payloads) {
    if (p == "[DONE]") break;
    const json c = json::parse(p);
    if (!c["choices"].empty() && c["choices"][0]["delta"].contains("content"))
      text += c["choices"][0]["delta"]["content"].get<std::string>();
  }
  EXPECT_EQ(text, a["choices"][0]["message"]["content"]);
}

}  // namespace
}  // namespace lmx::testing
