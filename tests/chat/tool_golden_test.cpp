// Tool calls rendered by real chat templates (Python jinja2, tools/fixtures/
// render_tool_calls.py) parse back to the same calls, and our template engine renders
// those conversations identically.
#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "chat_fixtures.h"
#include "lmx/chat/chat_template.h"
#include "lmx/chat/tool_call_processor.h"
#include "tool_test_helpers.h"

namespace lmx::chat {
namespace {

using nlohmann::ordered_json;

struct Golden {
  ordered_json root = testing::read_json(testing::fixture_dir() / "tools" / "golden.json");
  std::vector<ToolSpec> tools() const {
    std::vector<ToolSpec> out;
    for (const auto& t : root["tools"]) out.push_back(ToolSpec::from_json(t));
    return out;
  }
};

const Golden& golden() {
  static const Golden g;
  return g;
}

TEST(ToolGolden, CoversEveryFormat) {
  std::set<std::string> formats;
  for (const auto& c : golden().root["cases"]) formats.insert(c["format"].get<std::string>());
  EXPECT_EQ(formats, (std::set<std::string>{"json", "lfm2", "xml_function", "glm4", "gemma", "kimi_k2", "minimax_m2",
                                            "mistral", "llama3", "gpt_oss"}));
  EXPECT_GE(golden().root["cases"].size(), 40u);
}

TEST(ToolGolden, ToolSpecRoundTripsTheTemplateToolsVariable) {
  EXPECT_EQ(tools_to_json(golden().tools()), golden().root["tools"]);
}

TEST(ToolGolden, OurEngineRendersLikeJinja2) {
  LMX_REQUIRE_SHARED(testing::corpus_dir());
  SpecialTokens special;
  for (const auto& [k, v] : golden().root["special_tokens"].items()) special.emplace_back(k, v.get<std::string>());
  ChatRenderOptions options;
  options.add_generation_prompt = false;
  options.render.now = testing::fixed_now(golden().root["fixed_now"].get<std::string>());
  ordered_json tools = tools_to_json(golden().tools());
  for (const auto& c : golden().root["cases"]) {
    SCOPED_TRACE(c["template"].get<std::string>() + " " + c["conversation"].get<std::string>());
    ChatTemplate t(testing::read_text(testing::corpus_dir() / c["template"].get<std::string>()));
    EXPECT_EQ(t.render(c["messages"], tools, nullptr, special, options), c["full"].get<std::string>());
  }
}

// The assistant turn of golden case `c` parses with `format` to the rendered calls.
void expect_parses_back(ToolCallFormat format, const ordered_json& c, bool declared) {
  std::string turn = c["full"].get<std::string>().substr(c["cut"].get<size_t>());
  ToolCallProcessorOptions options;
  if (declared) options.tools = golden().tools();
  std::vector<ToolStreamEvent> events = testing::expect_stream_invariant(format, turn, options);
  std::vector<ToolCall> calls = testing::calls_of(events);
  const auto& expected = c["expected"];
  ASSERT_EQ(calls.size(), expected.size()) << testing::normalized(events).dump(1);
  for (size_t i = 0; i < calls.size(); ++i) {
    EXPECT_EQ(calls[i].name, expected[i]["name"].get<std::string>());
    EXPECT_EQ(nlohmann::json(calls[i].arguments), nlohmann::json(expected[i]["arguments"]));
  }
  for (const auto& e : events) {
    EXPECT_NE(e.kind, ToolStreamEvent::Kind::kRejectedToolCall) << e.error;
  }
}

TEST(ToolGolden, RenderedCallsParseBack) {
  for (const auto& c : golden().root["cases"]) {
    SCOPED_TRACE(c["template"].get<std::string>() + " " + c["conversation"].get<std::string>());
    auto format = tool_call_format_from_name(c["format"].get<std::string>());
    ASSERT_TRUE(format);
    for (bool declared : {true, false}) {
      // Without declared types, xml-like values are only typed when they are valid JSON.
      if (!declared && (*format == ToolCallFormat::kXmlFunction)) continue;
      expect_parses_back(*format, c, declared);
    }
  }
}

// qwen3_5 reads both forms Qwen templates render: XML (Qwen3.5, Qwen3-Coder) and JSON
// (Qwen2.5, Qwen3); a Qwen 3.5 model type picks it over its template's xml_function.
TEST(ToolGolden, Qwen35ReadsQwenTemplates) {
  int checked = 0;
  for (const auto& c : golden().root["cases"]) {
    std::string name = c["template"].get<std::string>();
    if (name.find("Qwen") == std::string::npos) continue;
    SCOPED_TRACE(name + " " + c["conversation"].get<std::string>());
    expect_parses_back(ToolCallFormat::kQwen35, c, /*declared=*/true);
    ++checked;
    if (name.find("Qwen3.5") == std::string::npos) continue;
    LMX_REQUIRE_SHARED(testing::corpus_dir());
    std::string text = testing::read_text(testing::corpus_dir() / name);
    EXPECT_EQ(infer_tool_call_format(std::nullopt, nullptr, text, "qwen3_5"),
              ToolCallFormat::kQwen35);
  }
  EXPECT_GE(checked, 8);
}

TEST(ToolGolden, FormatInferredFromEachTemplate) {
  LMX_REQUIRE_SHARED(testing::corpus_dir());
  for (const auto& c : golden().root["cases"]) {
    SCOPED_TRACE(c["template"].get<std::string>());
    std::string text = testing::read_text(testing::corpus_dir() / c["template"].get<std::string>());
    EXPECT_EQ(to_string(infer_tool_call_format(std::nullopt, nullptr, text, "")), c["format"].get<std::string>());
  }
}

}  // namespace
}  // namespace lmx::chat
