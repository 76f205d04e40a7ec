// What models emit beyond what their templates show (issue 25), format by format: each
// output is checked whole and in 1-byte, 7-byte and random chunks; expected values are
// what mlx-swift-lm's parsers give for the same text, except where docs/tool-calling.md
// says lmx deliberately differs.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "lmx/chat/tool_call_format.h"
#include "lmx/chat/tool_call_processor.h"
#include "tool_test_helpers.h"

namespace lmx::chat {
namespace {

using nlohmann::json;
using nlohmann::ordered_json;
using Kind = ToolStreamEvent::Kind;

std::vector<ToolSpec> weather_tools() {
  return {
      {"get_weather", "", ordered_json::parse(R"({"type": "object", "properties": {
              "city": {"type": "string"}, "days": {"type": "integer"}, "detailed": {"type": "boolean"},
              "temperature": {"type": "number"}, "filters": {"type": "object"},
              "units": {"anyOf": [{"type": "integer"}, {"type": "null"}]}},
              "required": ["city"]})")},
      {"note", "", ordered_json::parse(R"({"type": "object", "properties": {
              "count": {"type": "string"}, "value": {"type": "integer"}, "memo": {"description": "untyped"},
              "size": {"type": "int"}, "label": {"type": "str"}},
              "additionalProperties": false})")},
      {"run", "",
       ordered_json::parse(R"({"type": "object", "properties": {"code": {"type": "string"}}})")}};
}

struct Output {
  ToolCallFormat format;
  std::string text;
  json calls;  // [{"name", "arguments"(, "id")}]
  std::string plain = "";
  bool declared = true;  // parse with weather_tools()
};

void expect_calls(const Output& o) {
  SCOPED_TRACE(std::string(to_string(o.format)) + ": " + o.text);
  ToolCallProcessorOptions options;
  if (o.declared) options.tools = weather_tools();
  std::vector<ToolStreamEvent> events = testing::expect_stream_invariant(o.format, o.text, options);
  for (const auto& e : events) EXPECT_NE(e.kind, Kind::kRejectedToolCall) << e.error;
  std::vector<ToolCall> calls = testing::calls_of(events);
  ASSERT_EQ(calls.size(), o.calls.size()) << testing::normalized(events).dump(1);
  for (size_t i = 0; i < calls.size(); ++i) {
    EXPECT_EQ(calls[i].name, o.calls[i]["name"]);
    EXPECT_EQ(json(calls[i].arguments), o.calls[i]["arguments"]);
    if (o.calls[i].contains("id")) {
      EXPECT_EQ(calls[i].id, o.calls[i]["id"]);
    }
  }
  EXPECT_EQ(testing::joined(events, Kind::kText), o.plain);
}

void expect_rejected(ToolCallFormat format,
                     const std::string& text,
                     const std::string& error_part) {
  SCOPED_TRACE(std::string(to_string(format)) + ": " + text);
  ToolCallProcessorOptions options;
  options.tools = weather_tools();
  std::vector<ToolStreamEvent> events = testing::expect_stream_invariant(format, text, options);
  EXPECT_TRUE(testing::calls_of(events).empty()) << testing::normalized(events).dump(1);
  std::string errors;
  for (const auto& e : events) {
    if (e.kind == Kind::kRejectedToolCall) errors += e.error + "\n";
  }
  EXPECT_NE(errors.find(error_part), std::string::npos) << "errors: " << errors;
}

TEST(ToolModelOutput, GemmaNestedObjectsAndSchemaTypes) {
  const std::string nested =
      "<|tool_call>call:get_weather{city:<|\"|>Paris<|\"|>,filters:{\"city\":\"Paris\",max:3,tags:["
      "\"a\",<|\"|>b<|\"|>]}}"
      "<tool_call|>";
  for (bool declared : {true, false}) {
    expect_calls({ToolCallFormat::kGemma, nested,
                  json::parse(R"([{"name": "get_weather", "arguments": {"city": "Paris",
                                   "filters": {"city": "Paris", "max": 3, "tags": ["a", "b"]}}}])"),
                  "", declared});
  }
  // Escaped values take the declared type; unescaped ones too.
  const std::string typed =
      "<|tool_call>call:get_weather{city:<|\"|>Paris<|\"|>,days:<|\"|>3<|\"|>,detailed:<|\"|>true<|"
      "\"|>,"
      "temperature:21.5}<tool_call|>";
  expect_calls(
      {ToolCallFormat::kGemma, typed,
       json::parse(
           R"([{"name": "get_weather", "arguments": {"city": "Paris", "days": 3, "detailed": true,
                                 "temperature": 21.5}}])")});
  // Without a schema an escaped value is the string the model wrote.
  expect_calls(
      {ToolCallFormat::kGemma, typed,
       json::parse(
           R"([{"name": "get_weather", "arguments": {"city": "Paris", "days": "3", "detailed": "true",
                                 "temperature": 21.5}}])"),
       "", false});
  // A number where the schema says string stays the text written.
  expect_calls({ToolCallFormat::kGemma,
                "<start_function_call>call:note{count:05}<end_function_call>",
                json::parse(R"([{"name": "note", "arguments": {"count": "05"}}])")});
}

TEST(ToolModelOutput, Lfm2ArgumentsTakeSchemaTypes) {
  expect_calls(
      {ToolCallFormat::kLfm2,
       "<|tool_call_start|>[get_weather(city='Paris', days='25', detailed='True', units='null')]"
       "<|tool_call_end|>",
       json::parse(
           R"([{"name": "get_weather", "arguments": {"city": "Paris", "days": 25, "detailed": true,
                                 "units": null}}])")});
  expect_calls({ToolCallFormat::kLfm2,
                "<|tool_call_start|>[note(count=5, value=7)]<|tool_call_end|>",
                json::parse(R"([{"name": "note", "arguments": {"count": "5", "value": 7}}])")});
  // Type names other languages use.
  expect_calls({ToolCallFormat::kXmlFunction,
                "<function=note>\n<parameter=size>\n12\n</parameter>\n<parameter=label>\n12\n</"
                "parameter>\n</function>",
                json::parse(R"([{"name": "note", "arguments": {"size": 12, "label": "12"}}])")});
  // A parameter declared without a type: the literal keeps its own type.
  expect_calls({ToolCallFormat::kLfm2, "<|tool_call_start|>[note(memo='25')]<|tool_call_end|>",
                json::parse(R"([{"name": "note", "arguments": {"memo": "25"}}])")});
  expect_calls({ToolCallFormat::kGemma, "<|tool_call>call:note{memo:<|\"|>25<|\"|>}<tool_call|>",
                json::parse(R"([{"name": "note", "arguments": {"memo": "25"}}])")});
  // Undeclared: Python literals keep their own types.
  expect_calls(
      {ToolCallFormat::kLfm2, "<|tool_call_start|>[note(count=5, value='7')]<|tool_call_end|>",
       json::parse(R"([{"name": "note", "arguments": {"count": 5, "value": "7"}}])"), "", false});
}

TEST(ToolModelOutput, Lfm2Recovery) {
  for (bool declared : {true, false}) {
    // A bare word is a string.
    expect_calls(
        {ToolCallFormat::kLfm2,
         "<|tool_call_start|>[get_weather(city=Paris, days=2)]<|tool_call_end|>",
         json::parse(R"([{"name": "get_weather", "arguments": {"city": "Paris", "days": 2}}])"), "",
         declared});
    expect_calls({ToolCallFormat::kLfm2,
                  "<|tool_call_start|>[get_weather(city=New York)]<|tool_call_end|>",
                  json::parse(R"([{"name": "get_weather", "arguments": {"city": "New York"}}])"),
                  "", declared});
    // Cut off before <|tool_call_end|> at the end of the stream.
    expect_calls(
        {ToolCallFormat::kLfm2, "Checking.<|tool_call_start|>[get_weather(city=\"Paris\", days=3)]",
         json::parse(R"([{"name": "get_weather", "arguments": {"city": "Paris", "days": 3}}])"),
         "Checking.", declared});
    // A call in the `functions.` namespace.
    expect_calls({ToolCallFormat::kLfm2,
                  "<|tool_call_start|>[functions.get_weather(city='Oslo')]<|tool_call_end|>",
                  json::parse(R"([{"name": "get_weather", "arguments": {"city": "Oslo"}}])"), "",
                  declared});
    // Arguments wrapped in the schema's `properties`.
    expect_calls(
        {ToolCallFormat::kLfm2,
         "<|tool_call_start|>[get_weather(properties={\"city\": \"Paris\"})]<|tool_call_end|>",
         json::parse(R"([{"name": "get_weather", "arguments": {"city": "Paris"}}])"), "",
         declared});
  }
  // A list cut off mid-call is still rejected.
  expect_rejected(ToolCallFormat::kLfm2, "<|tool_call_start|>[get_weather(city=\"Par",
                  "unterminated");
}

TEST(ToolModelOutput, JsonWithoutWrapper) {
  expect_calls(
      {ToolCallFormat::kJson,
       "I'll check.\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\", \"note\": "
       "\"{x}\"}}\nDone.",
       json::parse(R"([{"name": "get_weather", "arguments": {"city": "Paris", "note": "{x}"}}])"),
       "I'll check.\n\nDone.", false});
  expect_calls(
      {ToolCallFormat::kJson,
       "{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", \"id\": \"call_7\", "
       "\"arguments\": \"{\\\"city\\\": \\\"Rome\\\"}\"}}",
       json::parse(R"([{"name": "get_weather", "arguments": {"city": "Rome"}, "id": "call_7"}])")});
  // Ordinary JSON, braces in prose and an unfinished object stay text.
  expect_calls({ToolCallFormat::kJson,
                "Use {x} or {\"a\": [1, {\"b\": 2}]} and {} then {\"name\": \"Bob\"} {\"open",
                json::array(),
                "Use {x} or {\"a\": [1, {\"b\": 2}]} and {} then {\"name\": \"Bob\"} {\"open"});
  // JSON that claims to be a call but is broken is rejected, not shown.
  expect_rejected(ToolCallFormat::kJson, "{\"name\": \"get_weather\", \"arguments\": {\"city\": }}",
                  "not valid JSON");
  // A number past a double's range (nlohmann's out_of_range) is rejected the same way.
  expect_rejected(ToolCallFormat::kJson, "{\"name\": \"get_weather\", \"arguments\": {\"days\": 1e999999}}",
                  "not valid JSON");
  // Redundant braces some Qwen templates leave around a call.
  expect_calls(
      {ToolCallFormat::kJson,
       "<tool_call>{{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Oslo\"}}}}</tool_call>",
       json::parse(R"([{"name": "get_weather", "arguments": {"city": "Oslo"}}])")});
}

TEST(ToolModelOutput, CallIdInsideFunctionIsKept) {
  expect_calls(
      {ToolCallFormat::kJson,
       "<tool_call>{\"type\": \"function\", \"function\": {\"id\": \"call_abc\", \"name\": "
       "\"get_weather\", "
       "\"arguments\": {\"city\": \"Paris\"}}}</tool_call>",
       json::parse(
           R"([{"name": "get_weather", "arguments": {"city": "Paris"}, "id": "call_abc"}])")});
  // An id beside "function" wins over one inside it.
  expect_calls(
      {ToolCallFormat::kMistral,
       "[TOOL_CALLS][{\"id\": \"outer1234\", \"function\": {\"id\": \"inner\", \"name\": "
       "\"get_weather\", "
       "\"arguments\": {\"city\": \"Paris\"}}}]",
       json::parse(
           R"([{"name": "get_weather", "arguments": {"city": "Paris"}, "id": "outer1234"}])")});
}

TEST(ToolModelOutput, Llama3PythonTagJsonList) {
  expect_calls(
      {ToolCallFormat::kLlama3,
       "<|python_tag|>[{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Paris\"}}, "
       "{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Rome\"}}]<|eom_id|>",
       json::parse(R"([{"name": "get_weather", "arguments": {"city": "Paris"}},
                                {"name": "get_weather", "arguments": {"city": "Rome"}}])")});
  expect_calls(
      {ToolCallFormat::kLlama3, "<|python_tag|>get_weather(city='Paris', days='2')",
       json::parse(R"([{"name": "get_weather", "arguments": {"city": "Paris", "days": 2}}])")});
}

TEST(ToolModelOutput, KimiSimplifiedFraming) {
  expect_calls(
      {ToolCallFormat::kKimiK2,
       "<|tool_calls_section_begin|>functions.get_weather:0<|tool_call_argument_begin|>{\"city\": "
       "\"Paris\"}"
       "<|tool_calls_section_end|>",
       json::parse(
           R"([{"name": "get_weather", "arguments": {"city": "Paris"}, "id": "functions.get_weather:0"}])")});
  expect_calls(
      {ToolCallFormat::kKimiK2,
       "<|tool_calls_section_begin|> <|tool_call_begin|> functions.get_weather:0 "
       "<|tool_call_argument_begin|> "
       "{\"city\": \"Paris\"} "
       "<|tool_call_begin|>tools.get_weather:1<|tool_call_argument_begin|>{\"city\": \"Rome\"}"
       "<|tool_calls_section_end|>",
       json::parse(R"([{"name": "get_weather", "arguments": {"city": "Paris"}},
                                {"name": "get_weather", "arguments": {"city": "Rome"}, "id": "tools.get_weather:1"}])")});
}

TEST(ToolModelOutput, XmlFunctionRefusesStrayText) {
  expect_rejected(
      ToolCallFormat::kXmlFunction,
      "<tool_call>\n<function=get_weather>\n<parameter=city>\nParis\n</parameter>\nI think so.\n"
      "</function>\n</tool_call>",
      "unexpected text inside <function=get_weather>");
  expect_rejected(ToolCallFormat::kXmlFunction,
                  "<function=get_weather>{\"city\": \"Paris\"}</function>",
                  "unexpected text inside <function=get_weather>");
  expect_rejected(ToolCallFormat::kXmlFunction,
                  "<tool_call>\n<function=get_weather>\n<parameter=city>\nParis\n</parameter>\n</"
                  "function>\nok\n"
                  "</tool_call>",
                  "expected <function=NAME>");
  // A <function=...> inside a JSON string is no call.
  expect_rejected(ToolCallFormat::kXmlFunction,
                  "<tool_call>{\"name\": \"run\", \"arguments\": {\"code\": "
                  "\"<function=get_weather>\"}}</tool_call>",
                  "expected <function=NAME>");
  // Unwrapped, <function= opens a call only at the start of a line: quoted in JSON (whose
  // strings hold no raw newline) or mid-sentence it is text.
  for (auto format : {ToolCallFormat::kXmlFunction, ToolCallFormat::kQwen35}) {
    const std::string quoted =
        "{\"name\": \"run\", \"arguments\": {\"code\": \"s = "
        "'<function=get_weather><parameter=city>Paris"
        "</parameter></function>'\"}}";
    expect_calls({format, quoted, json::array(), quoted});
    expect_calls({format, "Use <function=get_weather></function> to call it.", json::array(),
                  "Use <function=get_weather></function> to call it."});
    expect_calls(
        {format,
         "Calling:\n  <function=get_weather>\n<parameter=city>\nParis\n</parameter>\n</function>",
         json::parse(R"([{"name": "get_weather", "arguments": {"city": "Paris"}}])"),
         "Calling:\n  "});
  }
  // The canonical form still parses, typed by the schema.
  expect_calls(
      {ToolCallFormat::kXmlFunction,
       "<tool_call>\n<function=get_weather>\n<parameter=city>\nParis\n</"
       "parameter>\n<parameter=days>\n3\n"
       "</parameter>\n<parameter=detailed>\nYes\n</parameter>\n</function>\n</tool_call>",
       json::parse(
           R"([{"name": "get_weather", "arguments": {"city": "Paris", "days": 3, "detailed": true}}])")});
}

TEST(ToolModelOutput, Qwen35ReadsXmlAndJson) {
  expect_calls(
      {ToolCallFormat::kQwen35,
       "<think>\nweather\n</"
       "think>\n\n<tool_call>\n<function=get_weather>\n<parameter=city>\nParis\n"
       "</parameter>\n<parameter=days>\n2\n</parameter>\n</function>\n</tool_call>\n<tool_call>\n"
       "{\"name\": \"run\", \"arguments\": {\"code\": "
       "\"print('<function=get_weather>')\"}}\n</tool_call>",
       json::parse(R"j([{"name": "get_weather", "arguments": {"city": "Paris", "days": 2}},
                                 {"name": "run", "arguments": {"code": "print('<function=get_weather>')"}}])j"),
       "\n\n\n"});
  expect_rejected(ToolCallFormat::kQwen35, "<tool_call>get_weather(city='Paris')</tool_call>",
                  "neither <function=NAME> nor a JSON call");
  expect_rejected(ToolCallFormat::kQwen35,
                  "<tool_call><function=get_weather><parameter=city>Paris</parameter>oops</"
                  "function></tool_call>",
                  "unexpected text inside <function=get_weather>");
  expect_rejected(ToolCallFormat::kQwen35,
                  "<tool_call>{\"name\": \"get_weather\", \"arguments\": {</tool_call>",
                  "not valid JSON");
}

TEST(ToolModelOutput, AtemInvokes) {
  expect_calls(
      {ToolCallFormat::kAtem,
       "Let me look.<atem:function_calls>\n<atem:invoke name=\"get_weather\">\n"
       "<atem:parameter name=\"city\"> New York </atem:parameter>\n<atem:parameter "
       "name=\"days\">\n3\n"
       "</atem:parameter><atem:parameter name=\"filters\">{\"sky\": "
       "\"<atem:clear>\"}</atem:parameter>"
       "<atem:parameter "
       "name=\"units\">None</atem:parameter>\n</atem:invoke>\n</atem:function_calls>",
       json::parse(R"([{"name": "get_weather", "arguments": {"city": " New York ", "days": 3,
                                 "filters": {"sky": "<atem:clear>"}, "units": null}}])"),
       "Let me look."});
  expect_calls({ToolCallFormat::kAtem,
                "<atem:function_calls><atem:invoke name='note'><atem:parameter "
                "name='count'>5</atem:parameter>"
                "</atem:invoke></atem:function_calls>",
                json::parse(R"([{"name": "note", "arguments": {"count": "5"}}])")});
  const std::string open = "<atem:function_calls><atem:invoke name=\"get_weather\">";
  const std::string close = "</atem:invoke></atem:function_calls>";
  const std::string city = "<atem:parameter name=\"city\">Paris</atem:parameter>";
  expect_rejected(ToolCallFormat::kAtem, open + city + "and more" + close,
                  "expected <atem:parameter");
  expect_rejected(ToolCallFormat::kAtem,
                  open + city + close.substr(0, 14) +
                      "<atem:invoke name=\"note\"></atem:invoke>"
                      "</atem:function_calls>",
                  "one invoke per frame");
  expect_rejected(ToolCallFormat::kAtem,
                  open + "<atem:parameter name=\"days\">2</atem:parameter>" + close,
                  "required parameter 'city'");
  expect_rejected(ToolCallFormat::kAtem,
                  open + city + "<atem:parameter name=\"days\">soon</atem:parameter>" + close,
                  "parameter 'days' is not of its declared type");
  expect_rejected(ToolCallFormat::kAtem, open + city + city + close, "repeated");
  expect_rejected(ToolCallFormat::kAtem,
                  "<atem:function_calls><atem:invoke name=\"note\"><atem:parameter "
                  "name=\"extra\">1</atem:parameter>"
                  "</atem:invoke></atem:function_calls>",
                  "parameter 'extra' is not declared by 'note'");
  expect_rejected(ToolCallFormat::kAtem, open + city, "unterminated");
}

// Muse Glimmer continues the Onyx header the prompt opened (`<|start|>assistant`).
TEST(ToolModelOutput, AtemInOnyxFrames) {
  const std::string call =
      "<atem:function_calls><atem:invoke name=\"get_weather\"><atem:parameter "
      "name=\"city\">Paris</atem:parameter>"
      "</atem:invoke></atem:function_calls>";
  ToolCallProcessorOptions options;
  options.tools = weather_tools();
  auto events = testing::expect_stream_invariant(
      ToolCallFormat::kAtem,
      " to=self<|message|>Need the weather.<|eom|><|start|>assistant to=get_weather<|message|>" +
          call + "<|eot|>",
      options);
  EXPECT_EQ(testing::joined(events, Kind::kReasoning), "Need the weather.");
  EXPECT_EQ(testing::joined(events, Kind::kText), "");
  ASSERT_EQ(testing::calls_of(events).size(), 1u);
  EXPECT_EQ(json(testing::calls_of(events)[0].arguments), json::parse(R"({"city": "Paris"})"));
  expect_calls({ToolCallFormat::kAtem, "<|message|>It is sunny; I want to=be clear.<|eot|>",
                json::array(), "It is sunny; I want to=be clear."});
  expect_calls({ToolCallFormat::kAtem, " to=user<|message|>Hi.", json::array(), "Hi."});
  expect_rejected(ToolCallFormat::kAtem, " to=note<|message|>" + call,
                  "Onyx message to 'note' invokes 'get_weather'");
  expect_rejected(ToolCallFormat::kAtem, " to=get_weather<|message|>Paris<|eot|>",
                  "does not hold one");
}

TEST(ToolModelOutput, FormatInferenceForNewFormats) {
  const std::string qwen35_template = "{{- '<tool_call>\\n<function=' + tool_call.name + '>\\n' }}";
  EXPECT_EQ(infer_tool_call_format(std::nullopt, nullptr, qwen35_template, "qwen3_5"),
            ToolCallFormat::kQwen35);
  EXPECT_EQ(infer_tool_call_format(std::nullopt, nullptr, qwen35_template, "qwen3_5_moe"),
            ToolCallFormat::kQwen35);
  EXPECT_EQ(infer_tool_call_format(std::nullopt, nullptr, qwen35_template, "qwen3"),
            ToolCallFormat::kXmlFunction);
  EXPECT_EQ(infer_tool_call_format(std::nullopt, nullptr, qwen35_template, ""),
            ToolCallFormat::kXmlFunction);
  // A template of another format still decides for a Qwen 3.5 model type.
  EXPECT_EQ(infer_tool_call_format(std::nullopt, nullptr, "<|tool_call_start|>", "qwen3_5"),
            ToolCallFormat::kLfm2);
  EXPECT_EQ(
      infer_tool_call_format(std::nullopt, nullptr, "{{ '<atem:function_calls>' }}<tool_call>", ""),
      ToolCallFormat::kAtem);
  EXPECT_EQ(infer_tool_call_format(std::nullopt, {{"tool_parser_type", "qwen3_5"}}, "", ""),
            ToolCallFormat::kQwen35);
  EXPECT_EQ(infer_tool_call_format(std::nullopt, {{"tool_parser_type", "gemma4"}}, "", ""),
            ToolCallFormat::kGemma);
  EXPECT_EQ(tool_call_format_from_name("atem"), ToolCallFormat::kAtem);
}

}  // namespace
}  // namespace lmx::chat
