// Chat and text completions over HTTP against independent references: llama2.c's greedy
// output for stories260K, ModelContainer::generate for the same prompt and parameters,
// and the tokenizer's counts.
#include <nlohmann/json.hpp>

#include "test_server.h"

namespace lmx::testing {
namespace {

class ServerChat : public StoriesServerSuite {
 protected:
  static generate::UserInput prompt_input(const std::string& prompt) {
    generate::UserInput in;
    in.prompt = prompt;
    return in;
  }
  static generate::GenerateParameters greedy(int64_t max_tokens) {
    generate::GenerateParameters p;
    p.temperature = 0;
    p.max_tokens = max_tokens;
    return p;
  }
  static json user_chat(const std::string& text, int64_t max_tokens) {
    return {{"model", "stories260K"},
            {"messages", json::array({{{"role", "user"}, {"content", text}}})},
            {"temperature", 0},
            {"max_tokens", max_tokens}};
  }

};

TEST_F(ServerChat, GreedyCompletionEqualsLlama2c) {
  nlohmann::json expected;
  std::ifstream(shared_data("models/stories260K/expected_outputs.json")) >> expected;
  const std::string stdout_text = expected["greedy"]["stdout"].get<std::string>();
  const auto res = server_->post("/v1/completions",
                                 json{{"prompt", ""}, {"max_tokens", 256}, {"temperature", 0}});
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200) << res->body;
  const json j = json::parse(res->body);
  EXPECT_EQ(j["object"], "text_completion");
  EXPECT_EQ(j["model"], "stories260K");
  // run.c prints the 256 tokens then a newline.
  EXPECT_EQ(j["choices"][0]["text"].get<std::string>() + "\n", stdout_text);
  EXPECT_EQ(j["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(j["usage"]["prompt_tokens"], 1);  // BOS
  EXPECT_EQ(j["usage"]["completion_tokens"], expected["greedy"]["generated_ids_after_bos"].size());
  EXPECT_EQ(j["usage"]["total_tokens"], 257);
}

TEST_F(ServerChat, GreedyChatEqualsModelContainerGenerate) {
  const std::string prompt = "Once upon a time, Lily";
  const Reference ref = reference_generate(*model_, prompt_input(prompt), greedy(40));
  ASSERT_FALSE(ref.text.empty());
  const auto res = server_->post("/v1/chat/completions", user_chat(prompt, 40));
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200) << res->body;
  const json j = json::parse(res->body);
  EXPECT_EQ(j["object"], "chat.completion");
  EXPECT_EQ(j["id"].get<std::string>().rfind("chatcmpl-", 0), 0u);
  EXPECT_EQ(j["model"], "stories260K");
  ASSERT_EQ(j["choices"].size(), 1u);
  const json& choice = j["choices"][0];
  EXPECT_EQ(choice["index"], 0);
  EXPECT_EQ(choice["message"]["role"], "assistant");
  EXPECT_EQ(choice["message"]["content"], ref.text);
  EXPECT_FALSE(choice["message"].contains("tool_calls"));
  EXPECT_EQ(choice["finish_reason"], "length");
  const auto prompt_tokens = static_cast<int64_t>(model_->tokenizer().encode(prompt, true).size());
  EXPECT_EQ(j["usage"]["prompt_tokens"], prompt_tokens);
  EXPECT_EQ(j["usage"]["completion_tokens"], 40);
  EXPECT_EQ(j["usage"]["completion_tokens"], ref.info.generated_tokens);
  EXPECT_EQ(j["usage"]["total_tokens"], prompt_tokens + 40);
}

TEST_F(ServerChat, StreamedChunksConcatenateToTheSameTextThenDone) {
  const std::string prompt = "The cat";
  const Reference ref = reference_generate(*model_, prompt_input(prompt), greedy(30));
  json body = user_chat(prompt, 30);
  body["stream"] = true;
  body["stream_options"] = {{"include_usage", true}};
  const auto res = server_->post("/v1/chat/completions", body);
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200) << res->body;
  EXPECT_EQ(res->get_header_value("Content-Type"), "text/event-stream");
  const std::vector<std::string> events = sse_payloads(res->body);
  ASSERT_GE(events.size(), 4u);
  EXPECT_EQ(events.back(), "[DONE]");
  std::string text;
  std::string id;
  for (size_t i = 0; i + 1 < events.size(); ++i) {
    const json c = json::parse(events[i]);
    EXPECT_EQ(c["object"], "chat.completion.chunk");
    if (id.empty()) id = c["id"];
    EXPECT_EQ(c["id"], id);  // one id for the whole stream
    if (i + 2 == events.size()) {
      // The usage chunk: no choices.
      EXPECT_TRUE(c["choices"].empty());
      EXPECT_EQ(c["usage"]["prompt_tokens"], model_->tokenizer().encode(prompt, true).size());
      EXPECT_EQ(c["usage"]["completion_tokens"], 30);
      continue;
    }
    const json& choice = c["choices"][0];
    if (i == 0) {
      EXPECT_EQ(choice["delta"]["role"], "assistant");
    }
    if (i + 3 == events.size()) {
      EXPECT_EQ(choice["finish_reason"], "length");
      EXPECT_TRUE(choice["delta"].empty());
    } else {
      EXPECT_TRUE(choice["finish_reason"].is_null());
      text += choice["delta"]["content"].get<std::string>();
    }
  }
  EXPECT_EQ(text, ref.text);
}

TEST_F(ServerChat, StreamedCompletionConcatenatesToTheSameText) {
  const Reference ref = reference_generate(*model_, prompt_input("Tom had"), greedy(25));
  const auto res = server_->post(
      "/v1/completions",
      json{{"prompt", "Tom had"}, {"max_tokens", 25}, {"temperature", 0}, {"stream", true}});
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200) << res->body;
  const std::vector<std::string> events = sse_payloads(res->body);
  ASSERT_GE(events.size(), 2u);
  EXPECT_EQ(events.back(), "[DONE]");
  std::string text;
  for (size_t i = 0; i + 1 < events.size(); ++i) {
    const json c = json::parse(events[i]);
    EXPECT_EQ(c["object"], "text_completion");
    text += c["choices"][0]["text"].get<std::string>();
    EXPECT_EQ(c["choices"][0]["finish_reason"].is_null(), i + 2 < events.size());
  }
  EXPECT_EQ(text, ref.text);
}

TEST_F(ServerChat, StopStringEndsTheReplyBeforeIt) {
  const Reference ref = reference_generate(*model_, prompt_input("Once upon a time"), greedy(60));
  const std::string stop = ref.text.substr(30, 6);
  json body = user_chat("Once upon a time", 60);
  body["stop"] = json::array({"never-there", stop});
  const auto res = server_->post("/v1/chat/completions", body);
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200) << res->body;
  const json j = json::parse(res->body);
  EXPECT_EQ(j["choices"][0]["message"]["content"], ref.text.substr(0, ref.text.find(stop)));
  EXPECT_EQ(j["choices"][0]["finish_reason"], "stop");
}

TEST_F(ServerChat, SeededSamplingEqualsModelContainerWithTheSameSettings) {
  generate::GenerateParameters p;
  p.temperature = 0.9f;
  p.top_p = 0.8f;
  p.top_k = 40;
  p.min_p = 0.05f;
  p.repetition_penalty = 1.1f;
  p.presence_penalty = 0.5f;
  p.frequency_penalty = 0.25f;
  p.seed = 1234;
  p.max_tokens = 40;
  const Reference ref = reference_generate(*model_, prompt_input("A dog"), p);
  json body = user_chat("A dog", 40);
  body.update({{"temperature", 0.9},
               {"top_p", 0.8},
               {"top_k", 40},
               {"min_p", 0.05},
               {"repetition_penalty", 1.1},
               {"presence_penalty", 0.5},
               {"frequency_penalty", 0.25},
               {"seed", 1234}});
  const auto a = server_->post("/v1/chat/completions", body);
  ASSERT_TRUE(a);
  ASSERT_EQ(a->status, 200) << a->body;
  EXPECT_EQ(json::parse(a->body)["choices"][0]["message"]["content"], ref.text);
  // Another seed samples another text (the seed reaches the sampler).
  body["seed"] = 99;
  const auto b = server_->post("/v1/chat/completions", body);
  ASSERT_TRUE(b);
  EXPECT_NE(json::parse(b->body)["choices"][0]["message"]["content"], ref.text);
}

TEST_F(ServerChat, MaxCompletionTokensWinsOverMaxTokens) {
  json body = user_chat("Once", 50);
  body["max_completion_tokens"] = 7;
  const auto res = server_->post("/v1/chat/completions", body);
  ASSERT_TRUE(res);
  EXPECT_EQ(json::parse(res->body)["usage"]["completion_tokens"], 7);
}

TEST_F(ServerChat, ModelsAndHealth) {
  const auto models = server_->client()->Get("/v1/models");
  ASSERT_TRUE(models);
  ASSERT_EQ(models->status, 200);
  const json m = json::parse(models->body);
  EXPECT_EQ(m["object"], "list");
  ASSERT_EQ(m["data"].size(), 1u);
  EXPECT_EQ(m["data"][0]["id"], "stories260K");
  EXPECT_EQ(m["data"][0]["object"], "model");
  const auto one = server_->client()->Get("/v1/models/stories260K");
  ASSERT_TRUE(one);
  ASSERT_EQ(one->status, 200) << one->body;
  EXPECT_EQ(json::parse(one->body), m["data"][0]);
  const json e = expect_openai_error(server_->client()->Get("/v1/models/org/other"), 404);
  EXPECT_EQ(e["code"], "model_not_found");
  const auto health = server_->client()->Get("/health");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200);
  EXPECT_EQ(json::parse(health->body)["status"], "ok");
}

TEST_F(ServerChat, TextPartsAreJoinedLikeOneString) {
  const auto joined = server_->post("/v1/chat/completions", user_chat("Once upon a time", 12));
  json parts = user_chat("", 12);
  parts["messages"][0]["content"] = json::array(
      {{{"type", "text"}, {"text", "Once upon"}}, {{"type", "text"}, {"text", " a time"}}});
  const auto split = server_->post("/v1/chat/completions", parts);
  ASSERT_TRUE(joined && split);
  ASSERT_EQ(split->status, 200) << split->body;
  const json a = json::parse(joined->body), b = json::parse(split->body);
  EXPECT_EQ(b["choices"][0]["message"]["content"], a["choices"][0]["message"]["content"]);
  EXPECT_EQ(b["usage"]["prompt_tokens"], a["usage"]["prompt_tokens"]);
  // Parts of other types are refused, not dropped; images, by a text model
  // (server_images_test).
  parts["messages"][0]["content"][1] = {{"type", "input_audio"}, {"input_audio", {{"data", "x"}}}};
  json e = expect_openai_error(server_->post("/v1/chat/completions", parts), 400);
  EXPECT_EQ(e["param"], "messages[0].content[1]");
  parts["messages"][0]["content"][1] = {{"type", "image_url"}, {"image_url", {{"url", "x"}}}};
  e = expect_openai_error(server_->post("/v1/chat/completions", parts), 400);
  EXPECT_EQ(e["param"], "messages[0].content[1].image_url.url");
  EXPECT_EQ(e["code"], "images_not_supported");
}

}  // namespace
}  // namespace lmx::testing
