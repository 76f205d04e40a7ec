// ToolCallProcessor over hand-written outputs of every format: whole text and random
// chunkings agree; text, reasoning and calls come out right; bad input is rejected
// with the raw text kept.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "lmx/chat/tool_call_parser.h"
#include "lmx/chat/tool_call_processor.h"
#include "tool_test_helpers.h"

namespace lmx::chat {
namespace {

using nlohmann::json;
using nlohmann::ordered_json;
using Kind = ToolStreamEvent::Kind;

struct Case {
  ToolCallFormat format;
  std::string text;
  json calls;          // [{"name", "arguments"}]
  std::string plain;   // expected concatenated text events
  std::string reasoning = "";
};

std::vector<ToolSpec> declared_tools() {
  return {{"f", "", ordered_json::parse(R"({"type": "object", "properties": {
              "s": {"type": "string"}, "n": {"type": "integer"}, "b": {"type": "boolean"},
              "o": {"type": "object"}, "l": {"type": "array"}}})")},
          {"g", "", ordered_json::parse(R"({"type": "object", "properties": {}})")}};
}

const json kTricky = json::parse(R"({"s": "a)], 'b', \"c\"\nd ü 日本 👍", "n": 0, "b": true, "o": {"k": [1, false, null]}, "l": [1, "x, y"]})");

std::vector<Case> cases() {
  return {
      {ToolCallFormat::kJson,
       "Let me check.<tool_call>\n{\"name\": \"f\", \"arguments\": " + kTricky.dump() +
           "}\n</tool_call><tool_call>{\"name\": \"g\", \"arguments\": \"{\\\"n\\\": 1}\"}</tool_call> done <tool",
       json::parse(R"([{"name": "f"}, {"name": "g", "arguments": {"n": 1}}])"), "Let me check. done <tool"},
      {ToolCallFormat::kJson, "<think>\nplan: use <tool_call>?\n</think>\n\nok", json::array(), "\n\nok",
       "\nplan: use <tool_call>?\n"},
      {ToolCallFormat::kLfm2,
       "<|tool_call_start|>[f(s='a)], \\'b\\', \"c\"\nd ü 日本 👍', n=0, b=True, o={'k': [1, False, None]}, "
       "l=[1, \"x, y\"]), g(n=1)]<|tool_call_end|>Done.",
       json::parse(R"([{"name": "f"}, {"name": "g", "arguments": {"n": 1}}])"), "Done."},
      {ToolCallFormat::kXmlFunction,
       "<tool_call>\n<function=f>\n<parameter=s>\na)], 'b', \"c\"\nd ü 日本 👍\n</parameter>\n<parameter=n>\n0\n"
       "</parameter>\n<parameter=b>\ntrue\n</parameter>\n<parameter=o>\n{\"k\": [1, false, null]}\n</parameter>\n"
       "<parameter=l>\n[1, \"x, y\"]\n</parameter>\n</function>\n</tool_call>\n<function=g>\n<parameter=n>\n1\n"
       "</function>",
       json::parse(R"([{"name": "f"}, {"name": "g", "arguments": {"n": 1}}])"), "\n"},
      {ToolCallFormat::kGlm4,
       "x<tool_call>f\n<arg_key>s</arg_key>\n<arg_value>a)], 'b', \"c\"\nd ü 日本 👍</arg_value>\n<arg_key>n</arg_key>"
       "<arg_value>0</arg_value><arg_key>b</arg_key><arg_value>true</arg_value><arg_key>o</arg_key><arg_value>"
       "{\"k\": [1, false, null]}</arg_value><arg_key>l</arg_key><arg_value>[1, \"x, y\"]</arg_value></tool_call>"
       "<tool_call>g\n{\"n\": 1}</tool_call>",
       json::parse(R"([{"name": "f"}, {"name": "g", "arguments": {"n": 1}}])"), "x"},
      {ToolCallFormat::kGemma,
       "<start_function_call>call:f{s:<escape>a)], 'b', \"c\"\nd ü 日本 👍<escape>,n:0,b:true,o:{k:[1,false,null]},"
       "l:[1,<escape>x, y<escape>]}<end_function_call><|tool_call>call:g{n:1}<tool_call|>",
       json::parse(R"([{"name": "f"}, {"name": "g", "arguments": {"n": 1}}])"), ""},
      {ToolCallFormat::kKimiK2,
       "<|tool_calls_section_begin|><|tool_call_begin|>functions.f:0<|tool_call_argument_begin|>" + kTricky.dump() +
           "<|tool_call_end|><|tool_call_begin|>functions.g:1<|tool_call_argument_begin|>{\"n\": 1}<|tool_call_end|>"
           "<|tool_calls_section_end|>",
       json::parse(R"([{"name": "f"}, {"name": "g", "arguments": {"n": 1}}])"), ""},
      {ToolCallFormat::kMinimaxM2,
       "<minimax:tool_call>\n<invoke name=\"f\">\n<parameter name=\"s\">a)], 'b', \"c\"\nd ü 日本 👍</parameter>\n"
       "<parameter name=\"n\">0</parameter><parameter name=\"b\">true</parameter><parameter name=\"o\">"
       "{\"k\": [1, false, null]}</parameter><parameter name=\"l\">[1, \"x, y\"]</parameter>\n</invoke>\n"
       "<invoke name=\"g\"><parameter name=\"n\">1</parameter></invoke>\n</minimax:tool_call>",
       json::parse(R"([{"name": "f"}, {"name": "g", "arguments": {"n": 1}}])"), ""},
      {ToolCallFormat::kMistral,
       "Sure [TOOLS] [TOOL_CALLS]f[ARGS]" + kTricky.dump() + "[TOOL_CALLS][{\"name\": \"g\", \"arguments\": {\"n\": 1}}] ok",
       json::parse(R"([{"name": "f"}, {"name": "g", "arguments": {"n": 1}}])"), "Sure [TOOLS]  ok"},
      {ToolCallFormat::kMistral, "[TOOL_CALLS]f[CALL_ID]a1b2c3d4e[ARGS]" + kTricky.dump(),
       json::parse(R"([{"name": "f"}])"), ""},
      {ToolCallFormat::kLlama3, "{\"name\": \"f\", \"parameters\": " + kTricky.dump() + "}",
       json::parse(R"([{"name": "f"}])"), ""},
      {ToolCallFormat::kLlama3,
       "<|python_tag|>{\"name\": \"g\", \"parameters\": {\"n\": 1}}; {\"name\": \"g\", \"parameters\": {\"n\": 1}}"
       "<|eom_id|>after",
       json::parse(R"([{"name": "g", "arguments": {"n": 1}}, {"name": "g", "arguments": {"n": 1}}])"), "after"},
      {ToolCallFormat::kLlama3, "<|python_tag|>g.call(n=1)", json::parse(R"([{"name": "g", "arguments": {"n": 1}}])"),
       ""},
      {ToolCallFormat::kGptOss,
       "<|channel|>analysis<|message|>Need weather.<|end|><|start|>assistant<|channel|>commentary to=functions.f "
       "<|constrain|>json<|message|>" +
           kTricky.dump() + "<|call|>",
       json::parse(R"([{"name": "f"}])"), "", "Need weather."},
      {ToolCallFormat::kGptOss,
       " to=functions.g<|channel|>commentary json<|message|>{\"n\": 1}<|call|><|start|>assistant<|channel|>final"
       "<|message|>It is sunny.<|return|>",
       json::parse(R"([{"name": "g", "arguments": {"n": 1}}])"), "It is sunny."},
  };
}

using testing::joined;

TEST(ToolStream, EveryFormatWholeAndChunked) {
  int index = 0;
  for (const auto& c : cases()) {
    SCOPED_TRACE("case " + std::to_string(index++) + " " + std::string(to_string(c.format)));
    for (bool declared : {true, false}) {
      ToolCallProcessorOptions options;
      if (declared) options.tools = declared_tools();
      std::vector<ToolStreamEvent> events = testing::expect_stream_invariant(c.format, c.text, options);
      EXPECT_EQ(joined(events, Kind::kText), c.plain);
      EXPECT_EQ(joined(events, Kind::kReasoning), c.reasoning);
      EXPECT_EQ(joined(events, Kind::kRejectedToolCall), "") << testing::normalized(events).dump(1);
      std::vector<ToolCall> calls = testing::calls_of(events);
      ASSERT_EQ(calls.size(), c.calls.size()) << testing::normalized(events).dump(1);
      for (size_t i = 0; i < calls.size(); ++i) {
        EXPECT_EQ(calls[i].name, c.calls[i]["name"]);
        json expected = c.calls[i].contains("arguments") ? c.calls[i]["arguments"] : kTricky;
        // Values that are text in the output are typed by the declared schema (or by JSON).
        EXPECT_EQ(json(calls[i].arguments), expected);
        EXPECT_FALSE(calls[i].id.empty());
      }
    }
  }
}

TEST(ToolStream, IdsFromTheOutputAreKept) {
  auto events = process_tool_calls(ToolCallFormat::kKimiK2,
                                   "<|tool_call_begin|>functions.get_weather:3<|tool_call_argument_begin|>{}"
                                   "<|tool_call_end|>");
  ASSERT_EQ(testing::calls_of(events).size(), 1u);
  EXPECT_EQ(testing::calls_of(events)[0].id, "functions.get_weather:3");
  EXPECT_EQ(testing::calls_of(events)[0].name, "get_weather");
  auto json_calls = testing::calls_of(process_tool_calls(
      ToolCallFormat::kJson, "<tool_call>{\"name\": \"a\"}</tool_call><tool_call>{\"name\": \"b\"}</tool_call>"));
  ASSERT_EQ(json_calls.size(), 2u);
  EXPECT_EQ(json_calls[0].id, "call_0");
  EXPECT_EQ(json_calls[1].id, "call_1");
  EXPECT_EQ(json_calls[1].arguments, ordered_json::object());
}

TEST(ToolStream, StartsInsideReasoning) {
  ToolCallProcessorOptions options;
  options.starts_in_reasoning = true;
  auto events = testing::expect_stream_invariant(
      ToolCallFormat::kJson, "I should call f.\n</think>\n\n<tool_call>{\"name\": \"f\", \"arguments\": {}}</tool_call>",
      options);
  EXPECT_EQ(joined(events, Kind::kReasoning), "I should call f.\n");
  EXPECT_EQ(joined(events, Kind::kText), "\n\n");
  EXPECT_EQ(testing::calls_of(events).size(), 1u);
  // Reasoning is streamed as it comes, not held until </think>.
  ToolCallProcessor p(ToolCallFormat::kJson, options);
  auto first = p.feed("thinking about it");
  ASSERT_EQ(first.size(), 1u);
  EXPECT_EQ(first[0].kind, Kind::kReasoning);
  EXPECT_EQ(first[0].text, "thinking about it");
}

TEST(ToolStream, HoldsBackOnlyPossibleMarkers) {
  ToolCallProcessor p(ToolCallFormat::kJson);
  auto a = p.feed("Hello <to");
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].text, "Hello ");
  auto b = p.feed("day> x");  // not a marker after all: released
  ASSERT_EQ(b.size(), 1u);
  EXPECT_EQ(b[0].text, "<today> x");
  auto c = p.feed("<tool_call>{\"name\": \"f\"");
  EXPECT_TRUE(c.empty());
  EXPECT_TRUE(p.in_tool_call());
  auto d = p.feed("}</tool_");
  EXPECT_TRUE(d.empty());
  auto e = p.feed("call>");
  ASSERT_EQ(e.size(), 1u);
  EXPECT_EQ(e[0].kind, Kind::kToolCall);
  EXPECT_EQ(e[0].raw, "<tool_call>{\"name\": \"f\"}</tool_call>");
  EXPECT_TRUE(p.finish().empty());
  EXPECT_THROW(p.feed("x"), InvalidArgument);
}

struct Bad {
  ToolCallFormat format;
  std::string text;
  std::string error_part;
};

TEST(ToolStream, BadInputIsRejectedWithItsRawText) {
  std::vector<Bad> bad = {
      {ToolCallFormat::kJson, "<tool_call>{\"name\": \"f\", \"arguments\": {\"s\": 1}",
       "unterminated"},
      {ToolCallFormat::kJson, "<tool_call>{\"name\": \"f\", \"arguments\": {\"s\": }}</tool_call>",
       "not valid JSON"},
      {ToolCallFormat::kJson, "<tool_call>{\"arguments\": {}}</tool_call>", "no \"name\""},
      {ToolCallFormat::kJson, "<tool_call>{\"name\": \"f\", \"arguments\": \"{oops\"}</tool_call>",
       "arguments of 'f'"},
      {ToolCallFormat::kJson, "<tool_call>{\"name\": \"f\", \"arguments\": [1]}</tool_call>",
       "must be an object"},
      {ToolCallFormat::kJson, "<tool_call>{\"name\": \"nope\", \"arguments\": {}}</tool_call>",
       "undeclared tool 'nope'"},
      {ToolCallFormat::kLfm2, "<|tool_call_start|>[f(s='x', 3)]<|tool_call_end|>",
       "positional argument"},
      {ToolCallFormat::kLfm2, "<|tool_call_start|>[f(s='x)]<|tool_call_end|>",
       "unterminated string"},
      {ToolCallFormat::kLfm2, "<|tool_call_start|>[f(s=)]<|tool_call_end|>",
       "missing value of 's'"},
      {ToolCallFormat::kXmlFunction, "<tool_call>\n<parameter=s>x</parameter></tool_call>",
       "expected <function=NAME>"},
      {ToolCallFormat::kGlm4, "<tool_call>f<arg_key>s</arg_key>x</tool_call>",
       "not followed by <arg_value>"},
      {ToolCallFormat::kGemma, "<start_function_call>call:f{s:<escape>x}<end_function_call>",
       "unterminated string"},
      {ToolCallFormat::kGemma, "<start_function_call>f{}<end_function_call>", "expected 'call:'"},
      {ToolCallFormat::kKimiK2, "<|tool_calls_section_begin|>junk<|tool_calls_section_end|>",
       "no <|tool_call_begin|>"},
      {ToolCallFormat::kMinimaxM2, "<minimax:tool_call><invoke name=\"f\"><parameter name=\"s\"",
       "unterminated"},
      {ToolCallFormat::kMistral, "[TOOL_CALLS]f[ARGS]{\"s\": \"x\"", "not valid JSON"},
      {ToolCallFormat::kMistral, "[TOOL_CALLS]just text", "without [ARGS]"},
      {ToolCallFormat::kLlama3, "{\"name\": \"Bob\", \"age\": 3}", "no \"parameters\""},
      {ToolCallFormat::kGptOss, "<|channel|>commentary to=functions.f json<|message|>{bad}<|call|>",
       "not valid JSON"},
  };
  for (const auto& b : bad) {
    SCOPED_TRACE(std::string(to_string(b.format)) + ": " + b.text);
    ToolCallProcessorOptions options;
    options.tools = declared_tools();
    auto events = testing::expect_stream_invariant(b.format, b.text, options);
    std::vector<const ToolStreamEvent*> rejected;
    for (const auto& e : events) {
      if (e.kind == Kind::kRejectedToolCall) rejected.push_back(&e);
    }
    ASSERT_EQ(rejected.size(), 1u) << testing::normalized(events).dump(1);
    EXPECT_NE(rejected[0]->error.find(b.error_part), std::string::npos) << rejected[0]->error;
    EXPECT_EQ(rejected[0]->text, rejected[0]->raw);
    EXPECT_TRUE(testing::calls_of(events).empty());
    EXPECT_THROW(parse_tool_calls(b.format, b.text, &options.tools), ToolCallParseError);
  }
}

// Model output whose arguments nest 200000 deep (400 KB): nlohmann parsed it, and the
// first copy of the arguments recursed once per level and overflowed the stack (SIGSEGV in
// parse_tool_calls for all three formats below, i.e. in the server's stream). Now it is a
// rejected call whose raw text is kept.
TEST(ToolStream, DeeplyNestedArgumentsAreRejectedNotACrash) {
  const std::string deep = std::string(200000, '[') + std::string(200000, ']');
  const std::vector<std::pair<ToolCallFormat, std::string>> cases = {
      {ToolCallFormat::kJson, "<tool_call>{\"name\": \"f\", \"arguments\": {\"l\": " + deep + "}}</tool_call>"},
      {ToolCallFormat::kJson, "{\"name\": \"f\", \"arguments\": {\"l\": " + deep + "}}"},
      {ToolCallFormat::kMistral, "[TOOL_CALLS]f[ARGS]{\"l\": " + deep + "}"},
      {ToolCallFormat::kLlama3, "<|python_tag|>{\"name\": \"f\", \"parameters\": {\"l\": " + deep + "}}"},
  };
  for (const auto& [format, text] : cases) {
    SCOPED_TRACE(std::string(to_string(format)) + ": " + text.substr(0, 40));
    try {
      (void)parse_tool_calls(format, text);
      ADD_FAILURE() << "parsed";
    } catch (const ToolCallParseError& e) {
      EXPECT_NE(std::string(e.what()).find("JSON nested deeper than 512 levels"), std::string::npos) << e.what();
    }
    auto events = testing::feed_chunked(format, text, {}, 9, 4096);
    EXPECT_EQ(testing::concat_raw(events), text);
    EXPECT_TRUE(testing::calls_of(events).empty());
  }
}

TEST(ToolStream, HugeInputsFinishQuickly) {
  // 2 MB of text without markers, fed in small chunks; and a call that never ends.
  std::string text(2 << 20, 'a');
  for (size_t i = 0; i < text.size(); i += 97) text[i] = '<';
  auto events = testing::feed_chunked(ToolCallFormat::kJson, text, {}, 5, 4096);
  EXPECT_EQ(testing::concat_raw(events), text);
  std::string open = "<tool_call>{\"name\": \"f\", \"arguments\": {\"s\": \"" + std::string(1 << 20, 'x');
  auto unterminated = testing::feed_chunked(ToolCallFormat::kJson, open, {}, 6, 64);
  ASSERT_EQ(unterminated.size(), 1u);
  EXPECT_EQ(unterminated[0].kind, Kind::kRejectedToolCall);
  EXPECT_EQ(unterminated[0].raw, open);
  ToolCallProcessorOptions small;
  small.max_call_bytes = 1000;
  auto capped = testing::feed_chunked(ToolCallFormat::kMistral, "[TOOL_CALLS]f[ARGS]{\"s\": \"" + std::string(5000, '{'),
                                      small, 7, 100);
  ASSERT_FALSE(capped.empty());
  EXPECT_EQ(capped[0].kind, Kind::kRejectedToolCall);
  EXPECT_NE(capped[0].error.find("longer than 1000 bytes"), std::string::npos);
  // Braces and JSON objects in a long json-format answer (bare JSON calls are looked for)
  // stay text, and quickly.
  std::string braces;
  while (braces.size() < (1 << 20)) braces += "{x} {\"a\": [1, {\"b\": \"}\"}]} {} text ";
  auto brace_events = testing::feed_chunked(ToolCallFormat::kJson, braces, {}, 8, 64);
  EXPECT_EQ(testing::concat_raw(brace_events), braces);
  EXPECT_EQ(testing::joined(brace_events, Kind::kText), braces);
  // Deep nesting in a Python literal is an error, not a stack overflow.
  std::string deep = "<|tool_call_start|>[f(a=" + std::string(100000, '[') + ")]<|tool_call_end|>";
  auto deep_events = process_tool_calls(ToolCallFormat::kLfm2, deep);
  ASSERT_EQ(deep_events.size(), 1u);
  EXPECT_EQ(deep_events[0].kind, Kind::kRejectedToolCall);
}

}  // namespace
}  // namespace lmx::chat
