// HarmonyStreamAdapter: gpt-oss output routed by channel and recipient, whole and in
// 1-byte, 7-byte and random chunks (through ToolCallProcessor, which uses it for gpt_oss).
#include "lmx/chat/harmony_stream_adapter.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "tool_test_helpers.h"

namespace lmx::chat {
namespace {

using nlohmann::json;
using nlohmann::ordered_json;
using Kind = ToolStreamEvent::Kind;

std::vector<ToolSpec> tools() {
  return {
      {"get_weather", "",
       ordered_json::parse(R"({"type": "object", "properties": {"city": {"type": "string"}}})")}};
}

using testing::joined;

std::vector<const ToolStreamEvent*> of_kind(const std::vector<ToolStreamEvent>& events, Kind kind) {
  std::vector<const ToolStreamEvent*> out;
  for (const auto& e : events) {
    if (e.kind == kind) out.push_back(&e);
  }
  return out;
}

std::vector<ToolStreamEvent> routed(const std::string& text,
                                    bool declared = true,
                                    bool in_reasoning = false) {
  ToolCallProcessorOptions options;
  if (declared) options.tools = tools();
  options.starts_in_reasoning = in_reasoning;
  return testing::expect_stream_invariant(ToolCallFormat::kGptOss, text, options);
}

TEST(HarmonyStreamAdapter, RoutesChannelsAndCallsByRecipient) {
  auto events = routed(
      "<|channel|>analysis<|message|>User wants "
      "weather.<|end|><|start|>assistant<|channel|>commentary<|message|>"
      "Checking.<|end|><|start|>assistant<|channel|>commentary to=functions.get_weather "
      "<|constrain|>json<|message|>"
      "{\"city\": \"Paris\"}<|call|>");
  EXPECT_EQ(joined(events, Kind::kReasoning), "User wants weather.");
  EXPECT_EQ(joined(events, Kind::kText), "Checking.");
  auto calls = of_kind(events, Kind::kToolCall);
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_EQ(calls[0]->call.name, "get_weather");
  EXPECT_EQ(json(calls[0]->call.arguments), json::parse(R"({"city": "Paris"})"));
  EXPECT_EQ(calls[0]->recipient, "functions.get_weather");
  EXPECT_EQ(calls[0]->channel, "commentary");
  EXPECT_EQ(calls[0]->raw,
            "<|start|>assistant<|channel|>commentary to=functions.get_weather "
            "<|constrain|>json<|message|>"
            "{\"city\": \"Paris\"}<|call|>");
  for (const auto* e : of_kind(events, Kind::kReasoning)) EXPECT_EQ(e->channel, "analysis");
  EXPECT_TRUE(of_kind(events, Kind::kRejectedToolCall).empty());
}

TEST(HarmonyStreamAdapter, RecipientInTheRoleAndFinalAnswer) {
  auto events = routed(
      " to=functions.get_weather<|channel|>commentary json<|message|>{\"city\": \"Rome\"}<|call|>"
      "<|start|>assistant<|channel|>final<|message|>It is sunny in Rome.<|return|>");
  auto calls = of_kind(events, Kind::kToolCall);
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_EQ(json(calls[0]->call.arguments), json::parse(R"({"city": "Rome"})"));
  EXPECT_EQ(joined(events, Kind::kText), "It is sunny in Rome.");
  for (const auto* e : of_kind(events, Kind::kText)) {
    if (!e->text.empty()) {
      EXPECT_EQ(e->channel, "final");
    }
  }
}

TEST(HarmonyStreamAdapter, TextOutsideFramesIsFinalText) {
  EXPECT_EQ(joined(routed("Just an answer, no headers."), Kind::kText),
            "Just an answer, no headers.");
  EXPECT_EQ(joined(routed("<|channel|>final<|message|>Hi <there>.<|return|>"), Kind::kText),
            "Hi <there>.");
  auto events =
      routed("still thinking<|end|><|start|>assistant<|channel|>final<|message|>ok", true, true);
  EXPECT_EQ(joined(events, Kind::kReasoning), "still thinking");
  EXPECT_EQ(joined(events, Kind::kText), "ok");
}

TEST(HarmonyStreamAdapter, CallsNotEndedByCallAreRejected) {
  const std::string head =
      "<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>";
  for (const std::string& text :
       {head + "{\"city\": \"Paris\"}<|end|>", head + "{\"city\": \"Par",
        head + "{\"city\": \"Paris\"}<|start|>assistant<|channel|>final<|message|>Done."}) {
    SCOPED_TRACE(text);
    auto events = routed(text);
    EXPECT_TRUE(of_kind(events, Kind::kToolCall).empty());
    auto rejected = of_kind(events, Kind::kRejectedToolCall);
    ASSERT_EQ(rejected.size(), 1u);
    EXPECT_NE(rejected[0]->error.find("<|call|> must end it"), std::string::npos)
        << rejected[0]->error;
    EXPECT_EQ(rejected[0]->recipient, "functions.get_weather");
  }
  EXPECT_EQ(
      joined(routed(head + "{}<|start|>assistant<|channel|>final<|message|>Done."), Kind::kText),
      "Done.");
  // A payload that is not a JSON object, and an undeclared function.
  auto bad_events = routed(head + "[1]<|call|>");
  auto bad = of_kind(bad_events, Kind::kRejectedToolCall);
  ASSERT_EQ(bad.size(), 1u);
  EXPECT_NE(bad[0]->error.find("must be an object"), std::string::npos);
  auto undeclared_events =
      routed("<|channel|>commentary to=functions.get_time <|constrain|>json<|message|>{}<|call|>");
  auto undeclared = of_kind(undeclared_events, Kind::kRejectedToolCall);
  ASSERT_EQ(undeclared.size(), 1u);
  EXPECT_NE(undeclared[0]->error.find("undeclared tool 'get_time'"), std::string::npos)
      << undeclared[0]->error;
}

TEST(HarmonyStreamAdapter, BuiltInRecipientsKeepTheirName) {
  const std::string text =
      "<|channel|>analysis to=browser.search code<|message|>{\"query\": \"weather Paris\"}<|call|>";
  auto declared_events = routed(text);
  auto rejected = of_kind(declared_events, Kind::kRejectedToolCall);
  ASSERT_EQ(rejected.size(), 1u);
  EXPECT_NE(rejected[0]->error.find("undeclared tool 'browser.search'"), std::string::npos);
  auto open_events = routed(text, /*declared=*/false);
  auto calls = of_kind(open_events, Kind::kToolCall);
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_EQ(calls[0]->call.name, "browser.search");
  EXPECT_EQ(calls[0]->channel, "analysis");
}

TEST(HarmonyStreamAdapter, StreamsPayloadsAsTheyCome) {
  HarmonyStreamAdapter adapter;
  EXPECT_TRUE(adapter.feed("<|channel|>analysis<|mess").empty());
  auto a = adapter.feed("age|>thinking <|en");
  ASSERT_EQ(a.size(), 2u);  // the header (markup) and the reasoning so far
  EXPECT_EQ(a[0].raw, "<|channel|>analysis<|message|>");
  EXPECT_EQ(a[1].kind, Kind::kReasoning);
  EXPECT_EQ(a[1].text, "thinking ");
  auto b = adapter.feed(
      "d|><|start|>assistant<|channel|>commentary to=functions.f json<|message|>{\"a\"");
  EXPECT_TRUE(adapter.in_tool_call());
  auto c = adapter.feed(": 1}<|call|>");
  ASSERT_EQ(c.size(), 1u);
  EXPECT_EQ(c[0].kind, Kind::kToolCall);
  EXPECT_EQ(c[0].call.name, "f");
  EXPECT_FALSE(adapter.in_tool_call());
  EXPECT_TRUE(adapter.finish().empty());
  EXPECT_THROW(adapter.feed("x"), InvalidArgument);
}

}  // namespace
}  // namespace lmx::chat
