// ToolSpec, typed Tool, ToolCall::execute, ToolRegistry and format inference.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "lmx/chat/tool.h"
#include "lmx/chat/tool_call_format.h"

namespace lmx::chat {
// Outside the anonymous namespace: NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE defines both to_json
// and from_json, and each type uses only one (clang's -Wunused-function, fatal under -Werror).
namespace tool_test_types {

struct WeatherIn {
  std::string city;
  int days = 1;
  bool metric = true;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(WeatherIn, city, days, metric)

struct WeatherOut {
  std::string city;
  double temperature = 0;
  std::vector<std::string> notes;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(WeatherOut, city, temperature, notes)

}  // namespace tool_test_types

namespace {

using nlohmann::ordered_json;
using tool_test_types::WeatherIn;
using tool_test_types::WeatherOut;

ToolSpec weather_spec() {
  return {"get_weather", "Weather for a city.",
          ordered_json::parse(R"({"type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer"},
                           "metric": {"type": "boolean"}},
            "required": ["city", "days", "metric"]})")};
}

Tool<WeatherIn, WeatherOut> weather_tool() {
  return {weather_spec(), [](const WeatherIn& in) {
            return WeatherOut{in.city, in.metric ? 21.5 : 70.7, {std::to_string(in.days) + " days"}};
          }};
}

TEST(ToolSpec, ToJsonIsTheTransformersToolsForm) {
  ordered_json j = weather_spec().to_json();
  EXPECT_EQ(j.dump(), R"({"type":"function","function":{"name":"get_weather","description":"Weather for a city.",)"
                      R"("parameters":{"type":"object","properties":{"city":{"type":"string"},"days":{"type":"integer"},)"
                      R"("metric":{"type":"boolean"}},"required":["city","days","metric"]}}})");
  ToolSpec back = ToolSpec::from_json(j);
  EXPECT_EQ(back.name, "get_weather");
  EXPECT_EQ(back.parameters, weather_spec().parameters);
  EXPECT_THROW(ToolSpec::from_json(ordered_json{{"function", {{"description", "x"}}}}), InvalidArgument);
}

TEST(Tool, ExecuteDecodesRunsAndEncodes) {
  ToolCall call{"call_0", "get_weather", {{"city", "Zürich"}, {"days", 0}, {"metric", false}}};
  // NLOHMANN_DEFINE_TYPE_* (nlohmann 3.11.2) go through nlohmann::json: keys come out sorted.
  EXPECT_EQ(call.execute(weather_tool()), R"({"city":"Zürich","notes":["0 days"],"temperature":70.7})");
  // 3.0 is an integer in JSON Schema terms and decodes into int.
  call.arguments["days"] = 3.0;
  EXPECT_EQ(ordered_json::parse(call.execute(weather_tool()))["notes"][0], "3 days");
}

std::string error_of(const ToolCall& call) {
  try {
    call.execute(weather_tool());
  } catch (const InvalidArgument& e) {
    return e.what();
  }
  return "no error";
}

TEST(Tool, ErrorsNameTheToolAndField) {
  EXPECT_EQ(error_of({"", "get_weather", {{"city", 3}, {"days", 1}, {"metric", true}}}),
            "tool 'get_weather': argument 'city' must be of type string, got 3");
  EXPECT_EQ(error_of({"", "get_weather", {{"city", "x"}, {"metric", true}}}),
            "tool 'get_weather': missing required argument 'days'");
  EXPECT_EQ(error_of({"", "get_weather", {{"city", "x"}, {"days", 1.5}, {"metric", true}}}),
            "tool 'get_weather': argument 'days' must be of type integer, got 1.5");
  EXPECT_EQ(error_of({"", "get_weather", ordered_json::array()}),
            "tool 'get_weather': arguments must be an object, got []");
  EXPECT_EQ(error_of({"", "other", {}}), "tool 'get_weather' cannot execute a call to 'other'");
}

TEST(Tool, NestedFieldsAndEnumsAreNamed) {
  ToolSpec spec{"f", "", ordered_json::parse(R"({"type": "object", "properties": {
      "opts": {"type": "object", "properties": {"depth": {"type": "integer"}}, "required": ["depth"]},
      "tags": {"type": "array", "items": {"type": "string"}},
      "unit": {"type": "string", "enum": ["c", "f"]}}})")};
  auto message = [&](const char* args) {
    try {
      validate_tool_arguments(spec, ordered_json::parse(args));
    } catch (const InvalidArgument& e) {
      return std::string(e.what());
    }
    return std::string("ok");
  };
  EXPECT_EQ(message(R"({"opts": {"depth": "x"}})"), "tool 'f': argument 'opts.depth' must be of type integer, got \"x\"");
  EXPECT_EQ(message(R"({"opts": {}})"), "tool 'f': missing required argument 'opts.depth'");
  EXPECT_EQ(message(R"({"tags": ["a", 2]})"), "tool 'f': argument 'tags[1]' must be of type string, got 2");
  EXPECT_EQ(message(R"({"unit": "k"})"), "tool 'f': argument 'unit' must be one of [\"c\",\"f\"], got \"k\"");
  EXPECT_EQ(message(R"({"opts": {"depth": 2}, "tags": [], "unit": "c", "extra": null})"), "ok");
}

TEST(ToolRegistry, DispatchesByNameTypedAndUntyped) {
  ToolRegistry registry;
  registry.add(weather_tool());
  registry.add(ToolSpec{"echo", "Echo back.", ordered_json::parse(R"({"type": "object", "properties": {"x": {}}})")},
               [](const ordered_json& args) { return ordered_json{{"echo", args}}; });
  EXPECT_TRUE(registry.contains("echo"));
  EXPECT_FALSE(registry.contains("nope"));
  ASSERT_EQ(registry.specs().size(), 2u);
  EXPECT_EQ(registry.to_json()[1]["function"]["name"], "echo");
  EXPECT_EQ(registry.execute({"1", "echo", {{"x", {1, "a"}}}}), R"({"echo":{"x":[1,"a"]}})");
  EXPECT_EQ(ordered_json::parse(registry.execute({"2", "get_weather", {{"city", "P"}, {"days", 1}, {"metric", true}}}))["temperature"],
            21.5);
  try {
    registry.execute({"3", "nope", {}});
    FAIL();
  } catch (const InvalidArgument& e) {
    EXPECT_STREQ(e.what(), "no tool named 'nope' (registered: get_weather, echo)");
  }
  EXPECT_THROW(registry.add(weather_tool()), InvalidArgument);
  EXPECT_THROW(registry.execute({"4", "get_weather", {{"city", 1}}}), InvalidArgument);
}

TEST(ToolCallFormat, NamesRoundTrip) {
  for (auto f : {ToolCallFormat::kJson, ToolCallFormat::kLfm2, ToolCallFormat::kXmlFunction,
                 ToolCallFormat::kGlm4, ToolCallFormat::kGemma, ToolCallFormat::kKimiK2,
                 ToolCallFormat::kMinimaxM2, ToolCallFormat::kMistral, ToolCallFormat::kLlama3,
                 ToolCallFormat::kGptOss, ToolCallFormat::kQwen35, ToolCallFormat::kAtem}) {
    EXPECT_EQ(tool_call_format_from_name(to_string(f)), f);
  }
  EXPECT_EQ(tool_call_format_from_name("pythonic"), ToolCallFormat::kLfm2);
  EXPECT_EQ(tool_call_format_from_name("nope"), std::nullopt);
}

TEST(ToolCallFormat, InferenceOrder) {
  ordered_json config = {{"tool_parser_type", "glm47"}};
  const char* qwen_template = "{{ '<tool_call>' }}";
  // explicit > tokenizer_config > template markers > model_type > json
  EXPECT_EQ(infer_tool_call_format(ToolCallFormat::kMistral, config, qwen_template, "lfm2"), ToolCallFormat::kMistral);
  EXPECT_EQ(infer_tool_call_format(std::nullopt, config, qwen_template, "lfm2"), ToolCallFormat::kGlm4);
  EXPECT_EQ(infer_tool_call_format(std::nullopt, {{"tool_parser_type", "unknown"}}, qwen_template, "lfm2"),
            ToolCallFormat::kJson);
  EXPECT_EQ(infer_tool_call_format(std::nullopt, nullptr, "plain", "lfm2_moe"), ToolCallFormat::kLfm2);
  EXPECT_EQ(infer_tool_call_format(std::nullopt, nullptr, "plain", "gemma"), ToolCallFormat::kGemma);
  EXPECT_EQ(infer_tool_call_format(std::nullopt, nullptr, "plain", "qwen3_5_moe"),
            ToolCallFormat::kQwen35);
  EXPECT_EQ(infer_tool_call_format(std::nullopt, nullptr, "plain", "gpt_oss"), ToolCallFormat::kGptOss);
  EXPECT_EQ(infer_tool_call_format(std::nullopt, nullptr, "plain", "llama"), ToolCallFormat::kJson);
  EXPECT_EQ(infer_tool_call_format(std::nullopt, nullptr, "", ""), ToolCallFormat::kJson);
}

}  // namespace
}  // namespace lmx::chat
