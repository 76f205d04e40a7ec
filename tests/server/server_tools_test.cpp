// Tool calls and reasoning through the server: stories260K with Qwen2.5's chat template
// (tool calls as <tool_call> JSON) and a logits processor, installed through
// ServerOptions::customize_parameters, that forces a scripted reply. The second round's
// prompt is checked against Python jinja2's rendering (tests/data/chat/tool_loop.json).
#include <mutex>
#include <nlohmann/json.hpp>

#include "lmx/chat/tool_call_processor.h"
#include "test_server.h"

namespace lmx::testing {
namespace {

class ServerTools : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!have_stories()) return;
    fx_ = tool_loop_fixture();
    model_ = load_stories(fx_["template"].get<std::string>());
    server::ServerOptions o;
    o.customize_parameters = [](generate::GenerateParameters& p) {
      std::lock_guard<std::mutex> lock(script_mutex_);
      auto tokens =
          std::make_shared<std::vector<int32_t>>(model_->tokenizer().encode(script_, false));
      auto step = std::make_shared<size_t>(0);
      p.logits_processors.push_back(
          [tokens, step](const std::vector<int32_t>&, std::vector<float>& logits) {
            force_script(*tokens, (*step)++, logits);
          });
    };
    server_ = std::make_unique<TestServer>(model_, o);
  }
  static void TearDownTestSuite() {
    server_.reset();
    model_.reset();
  }
  void SetUp() override { LMX_REQUIRE_STORIES(); }
  static void script(const std::string& text) {
    std::lock_guard<std::mutex> lock(script_mutex_);
    script_ = text;
  }
  static json weather_request(bool stream) {
    json body = {{"messages", json::array({{{"role", "user"}, {"content", fx_["user"]}}})},
                 {"tools", fx_["tools"]},
                 {"max_tokens", 200}};
    if (stream) body["stream"] = true;
    return body;
  }

  static json fx_;
  static std::shared_ptr<generate::ModelContainer> model_;
  static std::unique_ptr<TestServer> server_;
  static std::mutex script_mutex_;
  static std::string script_;
};
json ServerTools::fx_;
std::shared_ptr<generate::ModelContainer> ServerTools::model_;
std::unique_ptr<TestServer> ServerTools::server_;
std::mutex ServerTools::script_mutex_;
std::string ServerTools::script_;

TEST_F(ServerTools, ToolCallComesBackAsToolCalls) {
  script(fx_["scripted_replies"][0].get<std::string>());
  const auto res = server_->post("/v1/chat/completions", weather_request(false));
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200) << res->body;
  const json choice = json::parse(res->body)["choices"][0];
  EXPECT_EQ(choice["finish_reason"], "tool_calls");
  EXPECT_TRUE(choice["message"]["content"].is_null());
  ASSERT_EQ(choice["message"]["tool_calls"].size(), 1u);
  const json& call = choice["message"]["tool_calls"][0];
  EXPECT_FALSE(call["id"].get<std::string>().empty());
  EXPECT_EQ(call["type"], "function");
  EXPECT_EQ(call["function"]["name"], "get_weather");
  // OpenAI sends arguments as JSON text.
  ASSERT_TRUE(call["function"]["arguments"].is_string());
  EXPECT_EQ(json::parse(call["function"]["arguments"].get<std::string>()),
            json({{"city", "Paris"}, {"days", 0}}));
}

TEST_F(ServerTools, StreamedToolCallIsAnIndexedDelta) {
  script(fx_["scripted_replies"][0].get<std::string>());
  const auto res = server_->post("/v1/chat/completions", weather_request(true));
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200) << res->body;
  const auto events = sse_payloads(res->body);
  ASSERT_GE(events.size(), 3u);
  EXPECT_EQ(events.back(), "[DONE]");
  std::vector<json> calls;
  std::string content;
  for (size_t i = 0; i + 1 < events.size(); ++i) {
    const json delta = json::parse(events[i])["choices"][0]["delta"];
    if (delta.contains("tool_calls")) calls.push_back(delta["tool_calls"][0]);
    if (delta.contains("content")) content += delta["content"].get<std::string>();
  }
  EXPECT_EQ(content, "");  // the call's markup is not content
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_EQ(calls[0]["index"], 0);
  EXPECT_EQ(calls[0]["function"]["name"], "get_weather");
  EXPECT_EQ(json::parse(calls[0]["function"]["arguments"].get<std::string>()),
            json({{"city", "Paris"}, {"days", 0}}));
  EXPECT_EQ(json::parse(events[events.size() - 2])["choices"][0]["finish_reason"], "tool_calls");
}

TEST_F(ServerTools, ToolResultRoundRendersLikeJinja2) {
  // What an OpenAI client sends back: the assistant's call with arguments as JSON text,
  // then the tool's result.
  json messages = fx_["messages_before_answer"];
  for (auto& m : messages) {
    if (!m.contains("tool_calls")) continue;
    m["content"] = nullptr;
    for (auto& c : m["tool_calls"]) c["function"]["arguments"] = c["function"]["arguments"].dump();
  }
  const std::string answer = fx_["scripted_replies"][1].get<std::string>();
  script(answer);
  const auto res =
      server_->post("/v1/chat/completions",
                    json{{"messages", messages}, {"tools", fx_["tools"]}, {"max_tokens", 100}});
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200) << res->body;
  const json j = json::parse(res->body);
  EXPECT_EQ(j["choices"][0]["message"]["content"], answer);
  EXPECT_EQ(j["choices"][0]["finish_reason"], "stop");
  // The prompt the server fed is exactly Python jinja2's rendering of this conversation.
  const auto expected =
      model_->tokenizer().encode(fx_["prompt_before_answer"].get<std::string>(), false);
  EXPECT_EQ(j["usage"]["prompt_tokens"], expected.size());
}

TEST_F(ServerTools, ToolChoiceNoneKeepsTheCallAsText) {
  const std::string call = fx_["scripted_replies"][0].get<std::string>();
  script(call);
  json body = weather_request(false);
  body["tool_choice"] = "none";
  const auto res = server_->post("/v1/chat/completions", body);
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200) << res->body;
  const json choice = json::parse(res->body)["choices"][0];
  EXPECT_EQ(choice["message"]["content"], call);
  EXPECT_FALSE(choice["message"].contains("tool_calls"));
  EXPECT_EQ(choice["finish_reason"], "stop");
}

TEST_F(ServerTools, ReasoningComesAsReasoningContent) {
  const std::string reply = "<think>\nThe user wants a story.\n</think>\n\nOnce upon a time.";
  script(reply);
  // The reference split: the library's own processor over the whole text.
  std::string reasoning, content;
  for (const auto& e : chat::process_tool_calls(model_->tool_call_format(), reply)) {
    if (e.kind == chat::ToolStreamEvent::Kind::kReasoning) reasoning += e.text;
    if (e.kind == chat::ToolStreamEvent::Kind::kText) content += e.text;
  }
  ASSERT_FALSE(reasoning.empty());
  const auto res = server_->post(
      "/v1/chat/completions",
      json{{"messages", json::array({{{"role", "user"}, {"content", "Tell me a story"}}})},
           {"max_tokens", 100}});
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200) << res->body;
  const json message = json::parse(res->body)["choices"][0]["message"];
  EXPECT_EQ(message["reasoning_content"], reasoning);
  EXPECT_EQ(message["content"], content);
  EXPECT_EQ(content.find("<think>"), std::string::npos);
}

TEST_F(ServerTools, StreamedReasoningDeltasConcatenateToTheSameSplit) {
  const std::string reply = "<think>\nShort plan.\n</think>\n\nThe end.";
  script(reply);
  const json body = {{"messages", json::array({{{"role", "user"}, {"content", "Story?"}}})},
                     {"max_tokens", 100}};
  const auto whole = server_->post("/v1/chat/completions", body);
  ASSERT_TRUE(whole);
  ASSERT_EQ(whole->status, 200) << whole->body;
  const json message = json::parse(whole->body)["choices"][0]["message"];
  json streamed_body = body;
  streamed_body["stream"] = true;
  const auto res = server_->post("/v1/chat/completions", streamed_body);
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200) << res->body;
  const auto events = sse_payloads(res->body);
  ASSERT_GE(events.size(), 3u);
  EXPECT_EQ(events.back(), "[DONE]");
  std::string reasoning, content;
  for (size_t i = 0; i + 1 < events.size(); ++i) {
    const json delta = json::parse(events[i])["choices"][0]["delta"];
    if (delta.contains("reasoning_content"))
      reasoning += delta["reasoning_content"].get<std::string>();
    if (delta.contains("content")) content += delta["content"].get<std::string>();
  }
  EXPECT_EQ(reasoning, message["reasoning_content"]);
  EXPECT_EQ(content, message["content"]);
  EXPECT_NE(reasoning.find("Short plan."), std::string::npos);
  EXPECT_EQ(content.find("</think>"), std::string::npos);
}

}  // namespace
}  // namespace lmx::testing
