// The ChatSession tool loop end to end: stories260K with a real chat template (Qwen2.5's,
// tool calls as <tool_call> JSON) and a logits processor that forces a scripted reply
// per round. The session must parse the call, run the typed tool, append the assistant
// tool-call message and the tool result, and re-render the transcript exactly as Python
// jinja2 renders it (tests/data/chat/tool_loop.json, tools/fixtures/render_tool_loop.py).
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "lmx/chat/chat_template.h"
#include "lmx/generate/chat_session.h"
#include "lmx/io/llama2c_import.h"
#include "shared_data.h"

namespace lmx {
namespace {

namespace fs = std::filesystem;

struct WeatherIn {
  std::string city;
  int days = 0;
};
struct WeatherOut {
  std::string forecast;
  double celsius = 0;
};
void from_json(const nlohmann::ordered_json& j, WeatherIn& w) {
  j.at("city").get_to(w.city);
  j.at("days").get_to(w.days);
}
void to_json(nlohmann::ordered_json& j, const WeatherOut& w) {
  j = {{"forecast", w.forecast}, {"celsius", w.celsius}};
}

nlohmann::ordered_json fixture() {
  nlohmann::ordered_json j;
  std::ifstream(fs::path(LMX_SOURCE_DIR) / "tests/data/chat/tool_loop.json") >> j;
  return j;
}

// Forces each round's scripted tokens, then EOS; one script per round.
struct Script {
  std::vector<std::vector<int32_t>> rounds;
  int32_t eos = 2;
  size_t round = 0, pos = 0;
  void operator()(const std::vector<int32_t>&, std::vector<float>& logits) {
    int32_t want = eos;
    if (round < rounds.size() && pos < rounds[round].size()) {
      want = rounds[round][pos++];
    } else {
      ++round;
      pos = 0;
    }
    for (size_t i = 0; i < logits.size(); ++i) logits[i] = static_cast<int32_t>(i) == want ? 100.0f : -100.0f;
  }
};

// stories260K with the fixture's chat template.
std::shared_ptr<generate::ModelContainer> templated_stories(const nlohmann::ordered_json& fx) {
  static std::shared_ptr<generate::ModelContainer> cached;
  if (cached) return cached;
  const fs::path src = testing::shared_data("models/stories260K");
  const fs::path dir = fs::temp_directory_path() / ("lmx-tool-loop-" + std::to_string(::getpid()));
  io::import_llama2c(src / "stories260K.bin", src / "tok512.bin", dir);
  {
    std::ifstream in(testing::shared_data("chat-templates/" + fx["template"].get<std::string>()));
    std::ofstream(dir / "chat_template.jinja") << in.rdbuf();
  }
  cached = generate::ModelContainer::load(dir.string());
  fs::remove_all(dir);
  return cached;
}

generate::GenerateParameters scripted(const generate::ModelContainer& c, const std::vector<std::string>& replies,
                                      std::shared_ptr<Script>& script) {
  script = std::make_shared<Script>();
  for (const auto& r : replies) script->rounds.push_back(c.tokenizer().encode(r, false));
  generate::GenerateParameters p;
  p.temperature = 0;
  p.max_tokens = 200;
  p.logits_processors.push_back([script](const std::vector<int32_t>& t, std::vector<float>& l) { (*script)(t, l); });
  return p;
}

TEST(ToolLoop, SessionRunsTheCallAndRerendersTheTranscriptLikeJinja2) {
  LMX_REQUIRE_SHARED(testing::shared_data("models/stories260K/stories260K.bin"));
  const nlohmann::ordered_json fx = fixture();
  auto container = templated_stories(fx);
  ASSERT_EQ(container->tool_call_format(), chat::ToolCallFormat::kJson);

  auto registry = std::make_shared<chat::ToolRegistry>();
  std::vector<WeatherIn> seen;
  registry->add(chat::Tool<WeatherIn, WeatherOut>(chat::ToolSpec::from_json(fx["tools"][0]), [&](const WeatherIn& in) {
    seen.push_back(in);
    return WeatherOut{"sunny", 21.5};
  }));

  const auto& tok = container->tokenizer();
  std::shared_ptr<Script> script;
  const generate::GenerateParameters p =
      scripted(*container, fx["scripted_replies"].get<std::vector<std::string>>(), script);

  generate::ChatSession session(container, "", p);
  session.set_tools(registry);
  std::vector<generate::GenerationEvent::Kind> kinds;
  const std::string reply = session.stream_details(fx["user"].get<std::string>(), [&](const generate::GenerationEvent& e) {
    if (e.kind != generate::GenerationEvent::Kind::text) kinds.push_back(e.kind);
    return true;
  });

  // The typed tool ran once, with the argument types kept (days stays the number 0).
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].city, "Paris");
  EXPECT_EQ(seen[0].days, 0);
  // Round 1: a tool call, then its info; round 2: the answer, then its info.
  using K = generate::GenerationEvent::Kind;
  EXPECT_EQ(kinds, (std::vector<K>{K::tool_call, K::info, K::info}));
  EXPECT_EQ(reply, tok.decode(script->rounds[1], true));
  // The history holds exactly the messages transformers' templates expect.
  nlohmann::ordered_json expected = fx["messages"];
  expected.back()["content"] = reply;
  EXPECT_EQ(session.history().dump(1), expected.dump(1));

  // The round-2 prompt is the Python jinja2 rendering of that history (tools included):
  // our engine renders it identically, and the session fed exactly its tokens.
  generate::UserInput input;
  input.messages = std::make_shared<nlohmann::ordered_json>(fx["messages_before_answer"]);
  input.tools = std::make_shared<nlohmann::ordered_json>(fx["tools"]);
  EXPECT_EQ(container->render_prompt(input), fx["prompt_before_answer"].get<std::string>());
  const auto info = session.last_info();
  EXPECT_EQ(info.prompt_tokens + info.cached_prompt_tokens,
            static_cast<int64_t>(tok.encode(fx["prompt_before_answer"].get<std::string>(), false).size()));
  EXPECT_GT(info.cached_prompt_tokens, 0);  // round 1's prompt and call came from the cache
}

TEST(ToolLoop, StepLimitUndeclaredToolsAndFailingCalls) {
  LMX_REQUIRE_SHARED(testing::shared_data("models/stories260K/stories260K.bin"));
  const nlohmann::ordered_json fx = fixture();
  auto container = templated_stories(fx);
  auto registry = std::make_shared<chat::ToolRegistry>();
  int runs = 0;
  registry->add(chat::Tool<WeatherIn, WeatherOut>(chat::ToolSpec::from_json(fx["tools"][0]), [&](const WeatherIn&) {
    ++runs;
    return WeatherOut{"rain", 9};
  }));
  const std::string call = fx["scripted_replies"][0].get<std::string>();
  // A model that calls the tool every round stops after max_steps rounds of calls.
  {
    std::shared_ptr<Script> script;
    generate::ChatSession session(container, "", scripted(*container, {call, call, call, call}, script));
    session.set_tools(registry, 2);
    session.respond("Weather?");
    EXPECT_EQ(runs, 2);
    ASSERT_EQ(session.history().size(), 6u);  // user, (call, result) x 2, the last call unrun
    EXPECT_EQ(session.history().back()["role"], "assistant");
    EXPECT_TRUE(session.history().back().contains("tool_calls"));
  }
  // A call to an undeclared tool is rejected: reported, kept as text, never run.
  {
    std::shared_ptr<Script> script;
    const std::string bad = R"(<tool_call>
{"name": "launch", "arguments": {}}
</tool_call>)";
    generate::ChatSession session(container, "", scripted(*container, {bad}, script));
    session.set_tools(registry);
    std::vector<std::string> rejected;
    const std::string reply = session.stream_details("Go", [&](const generate::GenerationEvent& e) {
      if (e.kind == generate::GenerationEvent::Kind::rejected_tool_call) rejected.push_back(e.error);
      return true;
    });
    ASSERT_EQ(rejected.size(), 1u);
    EXPECT_NE(rejected[0].find("launch"), std::string::npos) << rejected[0];
    EXPECT_NE(reply.find("launch"), std::string::npos);  // nothing the model wrote is lost
    EXPECT_EQ(runs, 2);
    EXPECT_EQ(session.history().size(), 2u);
  }
  // Arguments that do not fit the schema: the model gets an error result and goes on.
  {
    std::shared_ptr<Script> script;
    const std::string wrong = R"(<tool_call>
{"name": "get_weather", "arguments": {"city": 3}}
</tool_call>)";
    generate::ChatSession session(container, "", scripted(*container, {wrong, "Sorry."}, script));
    session.set_tools(registry);
    session.respond("Weather?");
    ASSERT_EQ(session.history().size(), 4u);
    const auto result = nlohmann::ordered_json::parse(session.history()[2]["content"].get<std::string>());
    EXPECT_TRUE(result.contains("error")) << result.dump();
    EXPECT_EQ(runs, 2);
  }
}

}  // namespace
}  // namespace lmx
