// The ChatSession tool loop end to end: stories260K with a real chat template (Qwen2.5's,
// tool calls as <tool_call> JSON) and a logits processor that forces a scripted reply
// per round. The session must parse the call, run the typed tool, append the assistant
// tool-call message and the tool result, and re-render the transcript exactly as Python
// jinja2 renders it (tests/data/chat/tool_loop.json, tools/fixtures/render_tool_loop.py).
#include <gtest/gtest.h>

#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <optional>

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

// stories260K with the chat template `template_text`.
std::shared_ptr<generate::ModelContainer> stories_with_template(const std::string& template_text) {
  const fs::path src = testing::shared_data("models/stories260K");
  const fs::path dir = fs::temp_directory_path() / ("lmx-tool-loop-" + std::to_string(::getpid()));
  io::import_llama2c(src / "stories260K.bin", src / "tok512.bin", dir);
  std::ofstream(dir / "chat_template.jinja") << template_text;
  auto container = generate::ModelContainer::load(dir.string());
  fs::remove_all(dir);
  return container;
}

std::string corpus_template(const std::string& name) {
  std::ifstream in(testing::shared_data("chat-templates/" + name));
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// stories260K with the fixture's chat template.
std::shared_ptr<generate::ModelContainer> templated_stories(const nlohmann::ordered_json& fx) {
  static std::shared_ptr<generate::ModelContainer> cached;
  if (!cached) cached = stories_with_template(corpus_template(fx["template"].get<std::string>()));
  return cached;
}

generate::GenerateParameters scripted(const generate::ModelContainer& c, const std::vector<std::string>& replies,
                                      std::shared_ptr<Script>& script) {
  script = std::make_shared<Script>();
  for (const auto& r : replies) script->rounds.push_back(c.tokenizer().encode(r, false));
  generate::GenerateParameters p;
  p.temperature = 0;
  p.max_tokens = 400;
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

// A minimal template in Muse Glimmer's (Onyx) framing, with ATEM calls in the history.
const char* kAtemTemplate =
    R"({%- if tools -%}<|start|>system<|message|>{{ tools | tojson }}<|eot|>{%- endif -%}
{%- for m in messages -%}
{%- if m.role == 'assistant' and m.tool_calls is defined and m.tool_calls -%}
<|start|>assistant<|message|><atem:function_calls>{%- for tc in m.tool_calls -%}<atem:invoke name="{{ tc.function.name }}"><atem:parameter name="json">{{ tc.function.arguments | tojson }}</atem:parameter></atem:invoke>{%- endfor -%}</atem:function_calls><|eot|>
{%- elif m.role == 'tool' -%}<|start|>tool<|message|><tool_output>{{ m.content }}</tool_output><|eot|>
{%- else -%}<|start|>{{ m.role }}<|message|>{{ m.content }}<|eot|>
{%- endif -%}
{%- endfor -%}
{%- if add_generation_prompt -%}<|start|>assistant{%- endif -%})";

// The tool loop with the formats of issue 25 (what example_tool_calling does with a
// model of each): the call is parsed in the template's format, its text values typed by
// the schema, the tool run, and the second round's answer comes back as text.
TEST(ToolLoop, NewFormatsRunThroughTheSession) {
  LMX_REQUIRE_SHARED(testing::shared_data("models/stories260K/stories260K.bin"));
  const nlohmann::ordered_json fx = fixture();
  struct Case {
    std::string name, template_text;
    std::optional<chat::ToolCallFormat> set;  // else inferred from the template
    chat::ToolCallFormat format;
    std::string call, answer;
  };
  const std::string qwen35 = corpus_template("llama.cpp/Qwen3.5-4B.jinja");
  const std::vector<Case> cases = {
      {"qwen3_5 xml", qwen35, chat::ToolCallFormat::kQwen35, chat::ToolCallFormat::kQwen35,
       "Weather "
       "first.\n</think>\n\n<tool_call>\n<function=get_weather>\n<parameter=city>\nParis\n</"
       "parameter>\n"
       "<parameter=days>\n2\n</parameter>\n</function>\n</tool_call>",
       "Done.\n</think>\n\nSunny."},
      {"qwen3_5 json", qwen35, chat::ToolCallFormat::kQwen35, chat::ToolCallFormat::kQwen35,
       "</think>\n\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\", "
       "\"days\": 2}}\n"
       "</tool_call>",
       "</think>\n\nSunny."},
      {"gpt_oss", corpus_template("llama.cpp/openai-gpt-oss-120b.jinja"), std::nullopt,
       chat::ToolCallFormat::kGptOss,
       "<|channel|>analysis<|message|>Weather first.<|end|><|start|>assistant<|channel|>commentary "
       "to=functions.get_weather <|constrain|>json<|message|>{\"city\": \"Paris\", \"days\": "
       "2}<|call|>",
       "<|channel|>final<|message|>Sunny.<|return|>"},
      {"atem", kAtemTemplate, std::nullopt, chat::ToolCallFormat::kAtem,
       " to=get_weather<|message|><atem:function_calls><atem:invoke "
       "name=\"get_weather\"><atem:parameter name=\"city\">Paris"
       "</atem:parameter><atem:parameter "
       "name=\"days\">2</atem:parameter></atem:invoke></atem:function_calls>",
       "<|message|>Sunny."},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    auto container = stories_with_template(c.template_text);
    container->set_tool_call_format(c.set);
    ASSERT_EQ(container->tool_call_format(), c.format);
    auto registry = std::make_shared<chat::ToolRegistry>();
    std::vector<WeatherIn> seen;
    registry->add(chat::Tool<WeatherIn, WeatherOut>(chat::ToolSpec::from_json(fx["tools"][0]),
                                                    [&](const WeatherIn& in) {
                                                      seen.push_back(in);
                                                      return WeatherOut{"sunny", 21.5};
                                                    }));
    std::shared_ptr<Script> script;
    generate::ChatSession session(container, "", scripted(*container, {c.call, c.answer}, script));
    session.set_tools(registry);
    std::vector<std::string> rejected;
    const std::string reply =
        session.stream_details("Weather in Paris?", [&](const generate::GenerationEvent& e) {
          if (e.kind == generate::GenerationEvent::Kind::rejected_tool_call)
            rejected.push_back(e.error);
          return true;
        });
    EXPECT_TRUE(rejected.empty()) << rejected.front();
    ASSERT_EQ(seen.size(), 1u);
    EXPECT_EQ(seen[0].city, "Paris");
    EXPECT_EQ(seen[0].days, 2);
    EXPECT_NE(reply.find("Sunny."), std::string::npos) << reply;
    EXPECT_EQ(reply.find("<|"), std::string::npos) << reply;
    ASSERT_EQ(session.history().size(), 4u);  // user, the call, its result, the answer
    EXPECT_EQ(session.history()[1]["tool_calls"][0]["function"]["name"], "get_weather");
    EXPECT_EQ(session.history()[2]["role"], "tool");
  }
}

}  // namespace
}  // namespace lmx
