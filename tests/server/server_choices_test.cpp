// logprobs / top_logprobs and n: the fields in OpenAI's shapes (chat: choices[].logprobs
// .content[] with token, logprob, bytes, top_logprobs; completions: the legacy tokens /
// token_logprobs / top_logprobs / text_offset), whole and streamed, the values checked
// against a log-softmax of one uncached forward pass over prompt + reply; n choices
// equal n single requests with seeds seed + i.
#include <cmath>

#include "test_server.h"

namespace lmx::testing {
namespace {

class ServerChoices : public StoriesServerSuite {
 protected:
  // The greedy reply's token ids (generated alone) and, per generated position, the
  // log-softmax over the vocabulary from one forward pass of prompt + reply.
  struct Truth {
    std::vector<int32_t> ids;
    std::vector<std::vector<double>> logprobs;
  };
  static Truth truth(const std::string& prompt, int max_tokens) {
    Truth t;
    generate::UserInput in;
    in.prompt = prompt;
    const std::vector<int32_t> prompt_ids = model_->prepare(in);
    generate::GenerateParameters p;
    p.temperature = 0;
    p.max_tokens = max_tokens;
    generate::GenerateOptions o;
    o.eos_ids = model_->eos_ids();
    model_->perform([&](models::LanguageModel& m, const tokenizer::Tokenizer& tok) {
      generate::Generation g(m, tok, prompt_ids, p, o);
      while (g.next()) {
      }
      t.ids = g.tokens();
      std::vector<int32_t> all = prompt_ids;
      all.insert(all.end(), t.ids.begin(), t.ids.end());
      const Tensor logits =
          m.forward(Tensor::from_vector(all, {1, static_cast<int64_t>(all.size())}), nullptr);
      for (size_t i = 0; i < t.ids.size(); ++i) {
        const auto row = logits.select(0, 0).select(0, static_cast<int64_t>(prompt_ids.size() - 1 + i))
                             .to_float_vector();
        double mx = -1e300, sum = 0;
        for (float v : row) mx = std::max(mx, static_cast<double>(v));
        for (float v : row) sum += std::exp(v - mx);
        std::vector<double> lp;
        for (float v : row) lp.push_back(v - mx - std::log(sum));
        t.logprobs.push_back(lp);
      }
    });
    if (!t.ids.empty() && o.eos_ids.count(t.ids.back())) {
      t.ids.pop_back();
      t.logprobs.pop_back();
    }
    return t;
  }
  static std::string token_text(int32_t id) {
    const int32_t ids[1] = {id};
    return model_->tokenizer().decode(ids, false, false);
  }
  static json bytes_of(const std::string& s) {
    json b = json::array();
    for (unsigned char c : s) b.push_back(static_cast<int>(c));
    return b;
  }
  // One chat logprobs entry against the truth at position i.
  static void expect_chat_entry(const json& e, const Truth& t, size_t i, size_t top) {
    ASSERT_TRUE(e.is_object()) << e;
    const std::string text = token_text(t.ids[i]);
    EXPECT_EQ(e["token"], text);
    EXPECT_EQ(e["bytes"], bytes_of(text));
    EXPECT_NEAR(e["logprob"].get<double>(), t.logprobs[i][static_cast<size_t>(t.ids[i])], 1e-3);
    ASSERT_EQ(e["top_logprobs"].size(), top);
    // The alternatives are the most likely tokens, most likely first.
    std::vector<double> sorted = t.logprobs[i];
    std::sort(sorted.rbegin(), sorted.rend());
    for (size_t k = 0; k < top; ++k) {
      const json& a = e["top_logprobs"][k];
      EXPECT_NEAR(a["logprob"].get<double>(), sorted[k], 1e-3) << "alternative " << k;
      EXPECT_EQ(a["bytes"], bytes_of(a["token"].get<std::string>()));
      EXPECT_EQ(a.size(), 3u) << a;
    }
    if (top > 0) {
      EXPECT_EQ(e["top_logprobs"][0]["token"], text) << "greedy picks the most likely";
    }
  }
};

TEST_F(ServerChoices, ChatLogprobsWholeAndStreamedMatchTheModel) {
  const Truth t = truth("Once upon a time", 12);
  ASSERT_FALSE(t.ids.empty());
  json body = {{"messages", json::array({{{"role", "user"}, {"content", "Once upon a time"}}})},
               {"max_tokens", 12},
               {"temperature", 0},
               {"logprobs", true},
               {"top_logprobs", 3}};
  const auto res = server_->post("/v1/chat/completions", body);
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200) << res->body;
  const json j = json::parse(res->body);
  const json& lp = j["choices"][0]["logprobs"];
  ASSERT_TRUE(lp.contains("refusal") && lp["refusal"].is_null()) << lp;
  const json& content = lp["content"];
  ASSERT_EQ(content.size(), t.ids.size()) << lp;
  for (size_t i = 0; i < content.size(); ++i) expect_chat_entry(content[i], t, i, 3);

  // Streamed: the chunks' logprobs.content concatenate to the same list (the same tokens;
  // log-probabilities to float rounding: the repeat takes all of its prompt but the last
  // token from the prefix cache, computed in another chunking).
  body["stream"] = true;
  const auto streamed = server_->post("/v1/chat/completions", body);
  ASSERT_TRUE(streamed);
  json all = json::array();
  for (const auto& p : sse_payloads(streamed->body)) {
    if (p == "[DONE]") break;
    const json c = json::parse(p);
    const json& l = c["choices"][0]["logprobs"];
    if (l.is_null()) continue;
    for (const auto& e : l["content"]) all.push_back(e);
  }
  ASSERT_EQ(all.size(), content.size());
  auto same_entry = [](const json& got, const json& want, const std::string& what) {
    EXPECT_EQ(got.size(), want.size()) << what;
    EXPECT_EQ(got["token"], want["token"]) << what;
    EXPECT_EQ(got["bytes"], want["bytes"]) << what;
    EXPECT_NEAR(got["logprob"].get<double>(), want["logprob"].get<double>(), 1e-4) << what;
  };
  for (size_t i = 0; i < content.size(); ++i) {
    same_entry(all[i], content[i], "token " + std::to_string(i));
    ASSERT_EQ(all[i]["top_logprobs"].size(), content[i]["top_logprobs"].size());
    for (size_t k = 0; k < content[i]["top_logprobs"].size(); ++k)
      same_entry(all[i]["top_logprobs"][k], content[i]["top_logprobs"][k],
                 "token " + std::to_string(i) + " alternative " + std::to_string(k));
  }

  // Without logprobs the field is null; logprobs without alternatives gives [] each.
  body = {{"messages", body["messages"]}, {"max_tokens", 3}, {"temperature", 0}};
  EXPECT_TRUE(json::parse(server_->post("/v1/chat/completions", body)->body)["choices"][0]["logprobs"].is_null());
  body["logprobs"] = true;
  const json bare = json::parse(server_->post("/v1/chat/completions", body)->body);
  for (const auto& e : bare["choices"][0]["logprobs"]["content"]) EXPECT_EQ(e["top_logprobs"], json::array());
}

TEST_F(ServerChoices, CompletionLogprobsInTheLegacyShape) {
  const Truth t = truth("The dog", 10);
  ASSERT_FALSE(t.ids.empty());
  const json body = {{"prompt", "The dog"}, {"max_tokens", 10}, {"temperature", 0}, {"logprobs", 2}};
  const auto res = server_->post("/v1/completions", body);
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200) << res->body;
  const json lp = json::parse(res->body)["choices"][0]["logprobs"];
  ASSERT_EQ(lp["tokens"].size(), t.ids.size()) << lp;
  ASSERT_EQ(lp["token_logprobs"].size(), t.ids.size());
  ASSERT_EQ(lp["top_logprobs"].size(), t.ids.size());
  ASSERT_EQ(lp["text_offset"].size(), t.ids.size());
  size_t offset = 0;
  for (size_t i = 0; i < t.ids.size(); ++i) {
    EXPECT_EQ(lp["tokens"][i], token_text(t.ids[i]));
    EXPECT_NEAR(lp["token_logprobs"][i].get<double>(), t.logprobs[i][static_cast<size_t>(t.ids[i])], 1e-3);
    EXPECT_EQ(lp["top_logprobs"][i].size(), 2u);
    EXPECT_TRUE(lp["top_logprobs"][i].contains(lp["tokens"][i].get<std::string>()));
    EXPECT_EQ(lp["text_offset"][i], offset);
    offset += lp["tokens"][i].get<std::string>().size();
  }
  // Streamed: the same tokens and offsets, chunk by chunk.
  json s = body;
  s["stream"] = true;
  json tokens = json::array(), offsets = json::array();
  for (const auto& p : sse_payloads(server_->post("/v1/completions", s)->body)) {
    if (p == "[DONE]") break;
    const json chunk = json::parse(p);
    const json& l = chunk["choices"][0]["logprobs"];
    if (l.is_null()) continue;
    for (const auto& x : l["tokens"]) tokens.push_back(x);
    for (const auto& x : l["text_offset"]) offsets.push_back(x);
  }
  EXPECT_EQ(tokens, lp["tokens"]);
  EXPECT_EQ(offsets, lp["text_offset"]);
}

TEST_F(ServerChoices, NChoicesEqualSingleRequestsWithSuccessiveSeeds) {
  const json messages = json::array({{{"role", "user"}, {"content", "Lily"}}});
  json body = {{"messages", messages}, {"max_tokens", 20}, {"temperature", 1.0}, {"seed", 40}, {"n", 3}};
  const auto res = server_->post("/v1/chat/completions", body);
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200) << res->body;
  const json j = json::parse(res->body);
  ASSERT_EQ(j["choices"].size(), 3u);
  int64_t completion = 0;
  std::set<std::string> distinct;
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(j["choices"][i]["index"], i);
    json one = body;
    one["n"] = 1;
    one["seed"] = 40 + static_cast<int>(i);
    const json single = json::parse(server_->post("/v1/chat/completions", one)->body);
    EXPECT_EQ(j["choices"][i]["message"], single["choices"][0]["message"]) << "choice " << i;
    completion += single["usage"]["completion_tokens"].get<int64_t>();
    distinct.insert(j["choices"][i]["message"]["content"].get<std::string>());
  }
  EXPECT_EQ(j["usage"]["completion_tokens"], completion);
  EXPECT_GT(distinct.size(), 1u) << "three seeds gave one reply";

  // Streamed: every chunk names its choice; per index the deltas concatenate to the
  // whole reply, and each choice ends with its own finish chunk.
  body["stream"] = true;
  std::vector<std::string> text(3);
  std::vector<int> finishes(3, 0), roles(3, 0);
  for (const auto& p : sse_payloads(server_->post("/v1/chat/completions", body)->body)) {
    if (p == "[DONE]") break;
    const json c = json::parse(p);
    const size_t k = c["choices"][0]["index"];
    ASSERT_LT(k, 3u);
    const json& d = c["choices"][0]["delta"];
    if (d.contains("role")) ++roles[k];
    if (d.contains("content")) text[k] += d["content"].get<std::string>();
    if (!c["choices"][0]["finish_reason"].is_null()) ++finishes[k];
  }
  for (size_t k = 0; k < 3; ++k) {
    EXPECT_EQ(text[k], j["choices"][k]["message"]["content"]) << "choice " << k;
    EXPECT_EQ(finishes[k], 1);
    EXPECT_EQ(roles[k], 1);
  }
}

}  // namespace
}  // namespace lmx::testing
