// Bad requests: each gets its status and an OpenAI-shaped error naming the field, and the
// server goes on serving. Also the API key and the body-size limit.
#include <nlohmann/json.hpp>

#include "test_server.h"

namespace lmx::testing {
namespace {

class ServerErrors : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!have_stories()) return;
    model_ = load_stories();
    server::ServerOptions o;
    o.max_body_bytes = 4096;
    server_ = std::make_unique<TestServer>(model_, o);
    server::ServerOptions keyed;
    keyed.api_key = "sk-local-3f9a1c";
    keyed_ = std::make_unique<TestServer>(model_, keyed);
  }
  static void TearDownTestSuite() {
    server_.reset();
    keyed_.reset();
    model_.reset();
  }
  void SetUp() override { LMX_REQUIRE_STORIES(); }

  // A good request still works.
  static void expect_serving(const TestServer& s, const httplib::Headers& headers = {}) {
    const json body = {{"messages", json::array({{{"role", "user"}, {"content", "Hi"}}})},
                       {"max_tokens", 3}};
    const auto res = s.post("/v1/chat/completions", body.dump(), headers);
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 200) << res->body;
    EXPECT_EQ(json::parse(res->body)["usage"]["completion_tokens"], 3);
  }

  static std::shared_ptr<generate::ModelContainer> model_;
  static std::unique_ptr<TestServer> server_, keyed_;
};
std::shared_ptr<generate::ModelContainer> ServerErrors::model_;
std::unique_ptr<TestServer> ServerErrors::server_, ServerErrors::keyed_;

struct BadRequest {
  const char* path;
  std::string body;
  int status;
  const char* param;  // nullptr: the error names no field
  const char* code;   // nullptr: not checked
};

std::string with(const std::string& fields) {
  return R"({"messages": [{"role": "user", "content": "Hi"}], )" + fields + "}";
}

TEST_F(ServerErrors, EachBadRequestGetsItsStatusAndField) {
  const std::vector<BadRequest> cases = {
      {"/v1/chat/completions", "{not json", 400, nullptr, "invalid_json"},
      {"/v1/chat/completions", "[1, 2]", 400, nullptr, "invalid_json"},
      {"/v1/chat/completions", R"({"messages": [], "max_tokens": 1e999999})", 400, nullptr, "invalid_json"},
      {"/v1/chat/completions", "", 400, nullptr, "invalid_json"},
      // Invalid UTF-8 (a lone lead byte) inside a string.
      {"/v1/chat/completions",
       std::string(R"({"messages": [{"role": "user", "content": "caf)") + "\xc3" + R"("}]})", 400,
       nullptr, "invalid_json"},
      {"/v1/chat/completions", R"({"model": "stories260K"})", 400, "messages",
       "missing_required_parameter"},
      {"/v1/chat/completions", R"({"messages": "Hi"})", 400, "messages", nullptr},
      {"/v1/chat/completions", R"({"messages": []})", 400, "messages", nullptr},
      {"/v1/chat/completions", R"({"messages": [{"role": "wizard", "content": "x"}]})", 400,
       "messages[0].role", nullptr},
      {"/v1/chat/completions", R"({"messages": [{"role": "user", "content": 5}]})", 400,
       "messages[0].content", nullptr},
      {"/v1/chat/completions", R"({"messages": [{"role": "user"}]})", 400, "messages[0].content",
       nullptr},
      {"/v1/chat/completions", with(R"("max_tokens": -1)"), 400, "max_tokens", nullptr},
      // mlx-lm's per-request adapters: this server serves none.
      {"/v1/chat/completions", with(R"("adapters": "other/adapters")"), 400, "adapters", nullptr},
      {"/v1/chat/completions", with(R"("adapters": 3)"), 400, "adapters", nullptr},
      {"/v1/chat/completions", with(R"("max_tokens": 0)"), 400, "max_tokens", nullptr},
      {"/v1/chat/completions", with(R"("max_tokens": "10")"), 400, "max_tokens", nullptr},
      {"/v1/chat/completions", with(R"("max_tokens": 1e30)"), 400, "max_tokens", nullptr},
      {"/v1/chat/completions", with(R"("max_completion_tokens": 99999999999999999999)"), 400,
       "max_completion_tokens", nullptr},
      {"/v1/chat/completions", with(R"("temperature": "hot")"), 400, "temperature", nullptr},
      {"/v1/chat/completions", with(R"("temperature": -0.5)"), 400, "temperature", nullptr},
      {"/v1/chat/completions", with(R"("top_p": 0)"), 400, "top_p", nullptr},
      {"/v1/chat/completions", with(R"("top_k": 1.5)"), 400, "top_k", nullptr},
      {"/v1/chat/completions", with(R"("presence_penalty": 3)"), 400, "presence_penalty", nullptr},
      {"/v1/chat/completions", with(R"("seed": "x")"), 400, "seed", nullptr},
      {"/v1/chat/completions", with(R"("stream": "yes")"), 400, "stream", nullptr},
      {"/v1/chat/completions", with(R"("stream_options": {"include_usage": 1})"), 400,
       "stream_options.include_usage", nullptr},
      {"/v1/chat/completions", with(R"("stop": [1])"), 400, "stop", nullptr},
      {"/v1/chat/completions", with(R"("logit_bias": {"512": 1})"), 400, "logit_bias", nullptr},
      {"/v1/chat/completions", with(R"("logit_bias": {"-1": 1})"), 400, "logit_bias", nullptr},
      {"/v1/chat/completions", with(R"("n": 9)"), 400, "n", nullptr},
      {"/v1/chat/completions", with(R"("n": 1000000)"), 400, "n", nullptr},
      {"/v1/chat/completions", with(R"("n": 0)"), 400, "n", nullptr},
      {"/v1/chat/completions", with(R"("logprobs": 1)"), 400, "logprobs", nullptr},
      {"/v1/chat/completions", with(R"("top_logprobs": 2)"), 400, "top_logprobs", nullptr},
      {"/v1/chat/completions", with(R"("logprobs": true, "top_logprobs": 21)"), 400,
       "top_logprobs", nullptr},
      {"/v1/completions", R"({"prompt": "x", "logprobs": true})", 400, "logprobs", nullptr},
      {"/v1/completions", R"({"prompt": "x", "logprobs": 21})", 400, "logprobs", nullptr},
      {"/v1/chat/completions", with(R"("response_format": {"type": "xml"})"), 400,
       "response_format.type", "invalid_value"},
      {"/v1/chat/completions", with(R"("n": 2, "response_format": {"type": "json_object"})"), 400, "n",
       "unsupported_value"},
      {"/v1/chat/completions", with(R"("tool_choice": "required")"), 400, "tool_choice",
       "invalid_value"},  // no tools declared
      {"/v1/chat/completions", with(R"("tools": [{"type": "function"}])"), 400, "tools[0]",
       nullptr},
      {"/v1/chat/completions", with(R"("tools": [{"type": 7, "function": {"name": "f"}}])"), 400,
       "tools[0]", nullptr},
      {"/v1/chat/completions", with(R"("model": "gpt-4o")"), 404, "model", "model_not_found"},
      {"/v1/completions", R"({"max_tokens": 3})", 400, "prompt", "missing_required_parameter"},
      {"/v1/completions", R"({"prompt": 5})", 400, "prompt", nullptr},
      {"/v1/completions", R"({"prompt": "x", "model": 3})", 400, "model", nullptr},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(std::string(c.path) + " " + c.body);
    const json e = expect_openai_error(server_->post(c.path, c.body), c.status);
    if (e.is_null()) continue;
    EXPECT_EQ(e["type"], "invalid_request_error");
    if (c.param) {
      EXPECT_EQ(e["param"], c.param);
    } else {
      EXPECT_TRUE(e["param"].is_null());
    }
    if (c.code) {
      EXPECT_EQ(e["code"], c.code);
    }
  }
  expect_serving(*server_);
}

TEST_F(ServerErrors, UnknownFieldsAreIgnored) {
  const auto res = server_->post("/v1/chat/completions",
                                 with(R"("max_tokens": 2, "user": "u1", "x_future": {"a": [1]})"));
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200) << res->body;
}

TEST_F(ServerErrors, UnknownPathIs404InOpenAIShape) {
  const json e = expect_openai_error(server_->client()->Get("/v1/nothing"), 404);
  EXPECT_EQ(e["code"], "not_found");
  expect_openai_error(server_->post("/v1/embeddings", std::string("{}")), 404);
  expect_serving(*server_);
}

TEST_F(ServerErrors, BodyOverTheLimitIs413) {
  const std::string big = with(R"("user": ")" + std::string(5000, 'a') + "\"");
  const json e = expect_openai_error(server_->post("/v1/chat/completions", big), 413);
  EXPECT_EQ(e["code"], "request_too_large");
  expect_serving(*server_);
}

TEST_F(ServerErrors, ApiKeyIsRequiredAndNeverEchoed) {
  const std::string ok = with(R"("max_tokens": 2)");
  const json none = expect_openai_error(keyed_->post("/v1/chat/completions", ok), 401);
  EXPECT_EQ(none["code"], "invalid_api_key");
  for (const std::string wrong :
       {"Bearer sk-local-3f9a1d", "Bearer sk-local-3f9a1c2", "sk-local-3f9a1c", "Bearer "}) {
    SCOPED_TRACE(wrong);
    const auto res = keyed_->post("/v1/chat/completions", ok, {{"Authorization", wrong}});
    expect_openai_error(res, 401);
    ASSERT_TRUE(res);
    EXPECT_EQ(res->body.find("sk-local"), std::string::npos) << res->body;
  }
  expect_openai_error(keyed_->client()->Get("/v1/models"), 401);
  // /health answers without a key (load balancers and scripts probe it).
  const auto health = keyed_->client()->Get("/health");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200);
  expect_serving(*keyed_, {{"Authorization", "Bearer sk-local-3f9a1c"}});
}

TEST_F(ServerErrors, ASecondServerCannotTakeABusyPort) {
  // Without SO_REUSEPORT: two servers never silently share one port's connections.
  server::ServerOptions o;
  o.host = "127.0.0.1";
  o.port = server_->port();
  server::HttpServer second(model_, o);
  EXPECT_THROW(second.bind(), IoError);
  expect_serving(*server_);
}

}  // namespace
}  // namespace lmx::testing
