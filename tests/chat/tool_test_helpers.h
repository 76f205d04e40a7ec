// Shared helpers of the tool-call tests: chunked feeding and event normalization.
#pragma once

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "lmx/chat/tool_call_processor.h"

namespace lmx::chat::testing {

// Feeds `text` in random chunks of 1..max_chunk bytes (max_chunk 1: byte by byte).
inline std::vector<ToolStreamEvent> feed_chunked(ToolCallFormat format,
                                                 std::string_view text,
                                                 const ToolCallProcessorOptions& options,
                                                 unsigned seed,
                                                 size_t max_chunk) {
  ToolCallProcessor p(format, options);
  std::mt19937 rng(seed);
  std::uniform_int_distribution<size_t> len(1, max_chunk);
  std::vector<ToolStreamEvent> events;
  for (size_t pos = 0; pos < text.size();) {
    size_t n = std::min(len(rng), text.size() - pos);
    for (auto& e : p.feed(text.substr(pos, n))) events.push_back(std::move(e));
    pos += n;
  }
  for (auto& e : p.finish()) events.push_back(std::move(e));
  return events;
}

// Feeds `text` in chunks of exactly `chunk` bytes (the last may be shorter).
inline std::vector<ToolStreamEvent> feed_fixed(ToolCallFormat format,
                                               std::string_view text,
                                               const ToolCallProcessorOptions& options,
                                               size_t chunk) {
  ToolCallProcessor p(format, options);
  std::vector<ToolStreamEvent> events;
  for (size_t pos = 0; pos < text.size(); pos += chunk) {
    for (auto& e : p.feed(text.substr(pos, chunk))) events.push_back(std::move(e));
  }
  for (auto& e : p.finish()) events.push_back(std::move(e));
  return events;
}

// Events as comparable JSON: consecutive text (and reasoning) events merged, since
// chunking decides where text is cut; ids of calls dropped unless the format gave them.
inline nlohmann::json normalized(const std::vector<ToolStreamEvent>& events) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& e : events) {
    const char* kind = e.kind == ToolStreamEvent::Kind::kText        ? "text"
                       : e.kind == ToolStreamEvent::Kind::kReasoning ? "reasoning"
                       : e.kind == ToolStreamEvent::Kind::kToolCall  ? "call"
                                                                     : "rejected";
    bool mergeable = e.kind == ToolStreamEvent::Kind::kText || e.kind == ToolStreamEvent::Kind::kReasoning;
    if (mergeable && !out.empty() && out.back()["kind"] == kind) {
      out.back()["text"] = out.back()["text"].get<std::string>() + e.text;
      continue;
    }
    nlohmann::json j = {{"kind", kind}, {"text", e.text}};
    if (e.kind == ToolStreamEvent::Kind::kToolCall) {
      j["name"] = e.call.name;
      j["arguments"] = nlohmann::json(e.call.arguments);
      j["id"] = e.call.id;
    }
    if (e.kind == ToolStreamEvent::Kind::kRejectedToolCall) j["error"] = e.error;
    out.push_back(j);
  }
  // Markup-only text events leave empty text entries behind: drop them.
  nlohmann::json cleaned = nlohmann::json::array();
  for (auto& j : out) {
    if (j["kind"] == "text" && j["text"] == "") continue;
    if (!cleaned.empty() && cleaned.back()["kind"] == j["kind"] && (j["kind"] == "text" || j["kind"] == "reasoning")) {
      cleaned.back()["text"] = cleaned.back()["text"].get<std::string>() + j["text"].get<std::string>();
      continue;
    }
    cleaned.push_back(j);
  }
  return cleaned;
}

inline std::string concat_raw(const std::vector<ToolStreamEvent>& events) {
  std::string out;
  for (const auto& e : events) out += e.raw;
  return out;
}

// The text of all events of `kind`, concatenated.
inline std::string joined(const std::vector<ToolStreamEvent>& events, ToolStreamEvent::Kind kind) {
  std::string out;
  for (const auto& e : events) {
    if (e.kind == kind) out += e.text;
  }
  return out;
}

inline std::vector<ToolCall> calls_of(const std::vector<ToolStreamEvent>& events) {
  std::vector<ToolCall> out;
  for (const auto& e : events) {
    if (e.kind == ToolStreamEvent::Kind::kToolCall) out.push_back(e.call);
  }
  return out;
}

// Whole-text and chunked feeding (1-byte and 7-byte chunks, random chunks of several
// seeds) agree, and the events account for every input byte.
inline std::vector<ToolStreamEvent> expect_stream_invariant(ToolCallFormat format,
                                                            std::string_view text,
                                                            const ToolCallProcessorOptions& options = {}) {
  std::vector<ToolStreamEvent> whole = process_tool_calls(format, text, options);
  EXPECT_EQ(concat_raw(whole), text);
  nlohmann::json expected = normalized(whole);
  for (size_t chunk : {size_t{1}, size_t{7}}) {
    std::vector<ToolStreamEvent> fixed = feed_fixed(format, text, options, chunk);
    EXPECT_EQ(concat_raw(fixed), text) << "chunks of " << chunk;
    EXPECT_EQ(normalized(fixed), expected) << "chunks of " << chunk;
  }
  for (unsigned seed : {1u, 2u, 3u, 7u}) {
    for (size_t max_chunk : {size_t{1}, size_t{3}, size_t{16}}) {
      std::vector<ToolStreamEvent> chunked = feed_chunked(format, text, options, seed, max_chunk);
      EXPECT_EQ(concat_raw(chunked), text) << "seed " << seed << " max_chunk " << max_chunk;
      EXPECT_EQ(normalized(chunked), expected) << "seed " << seed << " max_chunk " << max_chunk;
    }
  }
  return whole;
}

}  // namespace lmx::chat::testing
