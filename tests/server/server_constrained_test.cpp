// response_format (json_object, json_schema) and tool_choice (required, a named
// function) through the server with stories260K and Qwen2.5's chat template: replies,
// greedy and sampled, streamed or not, parse and validate against the schema in
// Python's jsonschema; hostile or unsupported schemas are OpenAI-shaped 400s and the
// server keeps serving.
#include <nlohmann/json.hpp>

#include "../generate/constrained/json_validator.h"
#include "test_server.h"

namespace lmx::testing {
namespace {

class ServerConstrained : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!have_stories()) return;
    model_ = load_stories(tool_loop_fixture()["template"].get<std::string>());
    server_ = std::make_unique<TestServer>(model_, server::ServerOptions{});
  }
  static void TearDownTestSuite() {
    server_.reset();
    model_.reset();
  }
  void SetUp() override { LMX_REQUIRE_STORIES(); }

  static json chat(const std::string& user, int seed) {
    json body = {{"messages", json::array({{{"role", "user"}, {"content", user}}})},
                 {"max_tokens", 600}};
    if (seed == 0) {
      body["temperature"] = 0;
    } else {
      body["seed"] = seed;
    }
    return body;
  }
  static json tools() {
    return json::parse(R"([
      {"type":"function","function":{"name":"get_weather","parameters":{"type":"object","properties":{"city":{"type":"string","maxLength":12},"days":{"type":"integer"}},"required":["city","days"]}}},
      {"type":"function","function":{"name":"get_time","parameters":{"type":"object","properties":{"tz":{"enum":["UTC","CET"]}},"required":["tz"],"additionalProperties":false}}}
    ])");
  }

  static std::shared_ptr<generate::ModelContainer> model_;
  static std::unique_ptr<TestServer> server_;
};
std::shared_ptr<generate::ModelContainer> ServerConstrained::model_;
std::unique_ptr<TestServer> ServerConstrained::server_;

TEST_F(ServerConstrained, JsonSchemaRepliesValidate) {
  std::vector<SchemaOutput> outputs;
  for (const std::string& text : test_schemas()) {
    const json schema = json::parse(text);
    for (int seed = 0; seed < 2; ++seed) {
      for (bool stream : {false, true}) {
        json body = chat("Tell me a story as JSON.", seed);
        body["response_format"] = {{"type", "json_schema"},
                                   {"json_schema", {{"name", "story"}, {"strict", true}, {"schema", schema}}}};
        body["stream"] = stream;
        const auto res = server_->post("/v1/chat/completions", body);
        ASSERT_TRUE(res);
        ASSERT_EQ(res->status, 200) << res->body;
        std::string content, finish;
        if (!stream) {
          const json choice = json::parse(res->body)["choices"][0];
          content = choice["message"]["content"].get<std::string>();
          finish = choice["finish_reason"].get<std::string>();
        } else {
          for (const auto& e : sse_payloads(res->body)) {
            if (e == "[DONE]") continue;
            const json c = json::parse(e)["choices"][0];
            if (c["delta"].contains("content")) content += c["delta"]["content"].get<std::string>();
            if (c["finish_reason"].is_string()) finish = c["finish_reason"].get<std::string>();
          }
        }
        EXPECT_EQ(finish, "stop") << text << ": " << content;
        outputs.push_back({schema, content});
      }
    }
  }
  LMX_EXPECT_VALID_OUTPUTS(outputs);
}

TEST_F(ServerConstrained, JsonObjectReplyIsAnObject) {
  const auto res = server_->post("/v1/completions", json{{"prompt", "Once upon a time"},
                                                         {"temperature", 0},
                                                         {"max_tokens", 300},
                                                         {"response_format", {{"type", "json_object"}}}});
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200) << res->body;
  const json choice = json::parse(res->body)["choices"][0];
  const std::string text = choice["text"].get<std::string>();
  ASSERT_FALSE(text.empty());
  EXPECT_EQ(text[0], '{') << text;
  if (choice["finish_reason"] == "stop") {
    EXPECT_TRUE(json::parse(text, nullptr, false).is_object()) << text;
  }
}

TEST_F(ServerConstrained, ForcedToolCallsValidate) {
  std::vector<SchemaOutput> outputs;
  const json declared = tools();
  for (const json& choice : {json("required"), json{{"type", "function"}, {"function", {{"name", "get_time"}}}}}) {
    for (int seed = 0; seed < 3; ++seed) {
      json body = chat("What is the weather in Paris?", seed);
      body["tools"] = declared;
      body["tool_choice"] = choice;
      const auto res = server_->post("/v1/chat/completions", body);
      ASSERT_TRUE(res);
      ASSERT_EQ(res->status, 200) << res->body;
      const json c = json::parse(res->body)["choices"][0];
      EXPECT_EQ(c["finish_reason"], "tool_calls") << res->body;
      ASSERT_EQ(c["message"]["tool_calls"].size(), 1u) << res->body;
      const json& fn = c["message"]["tool_calls"][0]["function"];
      const std::string name = fn["name"].get<std::string>();
      if (choice.is_object()) {
        EXPECT_EQ(name, "get_time");
      }
      for (const json& t : declared) {
        if (t["function"]["name"] == name)
          outputs.push_back({t["function"]["parameters"], fn["arguments"].get<std::string>()});
      }
    }
  }
  EXPECT_EQ(outputs.size(), 6u);
  LMX_EXPECT_VALID_OUTPUTS(outputs);
}

TEST_F(ServerConstrained, BadSchemasAndToolChoicesAre400s) {
  json big_enum = {{"enum", json::array()}};
  for (int i = 0; i < 10000; ++i) big_enum["enum"].push_back(i);
  std::string deep = R"({"type":"string"})";
  for (int i = 0; i < 200; ++i) deep = R"({"type":"array","items":)" + deep + "}";
  const std::vector<std::pair<json, std::string>> bad_formats = {
      {{{"type", "json_schema"}, {"json_schema", {{"name", "x"}, {"schema", big_enum}}}}, "response_format.json_schema.schema"},
      {{{"type", "json_schema"}, {"json_schema", {{"name", "x"}, {"schema", json::parse(R"({"$ref":"#"})")}}}}, "response_format.json_schema.schema"},
      {{{"type", "json_schema"}, {"json_schema", {{"name", "x"}, {"schema", json::parse(R"({"type":"object","properties":{"n":{"$ref":"#"}},"required":["n"]})")}}}}, "response_format.json_schema.schema"},
      {{{"type", "json_schema"}, {"json_schema", {{"name", "x"}, {"schema", json::parse(deep)}}}}, "response_format.json_schema.schema"},
      {{{"type", "json_schema"}, {"json_schema", {{"name", "x"}, {"schema", json::parse(R"({"type":"string","pattern":"^a"})")}}}}, "response_format.json_schema.schema"},
      {{{"type", "json_schema"}, {"json_schema", {{"schema", json::object()}}}}, "response_format.json_schema.name"},
      {{{"type", "json_schema"}}, "response_format.json_schema"},
      {{{"type", "xml"}}, "response_format.type"},
  };
  for (const auto& [format, param] : bad_formats) {
    json body = chat("hi", 0);
    body["response_format"] = format;
    const json e = expect_openai_error(server_->post("/v1/chat/completions", body), 400);
    EXPECT_EQ(e["param"], param) << e.dump();
  }
  const std::vector<std::pair<json, std::string>> bad_choices = {
      {json("required"), "tool_choice"},  // no tools declared
      {json("sometimes"), "tool_choice"},
      {json{{"type", "function"}, {"function", {{"name", "nope"}}}}, "tool_choice.function.name"},
      {json{{"type", "function"}}, "tool_choice"},
  };
  for (size_t i = 0; i < bad_choices.size(); ++i) {
    json body = chat("hi", 0);
    body["tool_choice"] = bad_choices[i].first;
    if (i >= 2) body["tools"] = tools();
    const json e = expect_openai_error(server_->post("/v1/chat/completions", body), 400);
    EXPECT_EQ(e["param"], bad_choices[i].second) << e.dump();
  }
  const auto ok = server_->post("/v1/chat/completions", chat("hi", 0));
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 200);
}

}  // namespace
}  // namespace lmx::testing
