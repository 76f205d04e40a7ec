// The interface behind every tool-call format: which markers open a call, where a call
// ends, and how its text becomes ToolCalls. One implementation per format lives in
// lmx/chat/tool_formats/<format>.cpp; ToolCallProcessor drives them over a stream.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "lmx/chat/tool.h"
#include "lmx/chat/tool_call_format.h"
#include "lmx/base/error.h"

namespace lmx::chat {

// A call's text is malformed (bad JSON, missing name, unbalanced literal, ...).
class ToolCallParseError : public FormatError {
 public:
  using FormatError::FormatError;
};

// Thrown by ToolCallParser::parse when a region opened by a marker that ordinary text
// may contain (a bare `{` in the json format) turns out to be text after all: the
// processor reports it as text, not as a rejected call.
class NotAToolCall : public ToolCallParseError {
 public:
  using ToolCallParseError::ToolCallParseError;
};

// Finds the end of one call region as its text grows. A region starts with its start
// marker; end() sees the whole region so far each time (the scanner may keep a position
// to avoid rescanning).
class RegionScanner {
 public:
  virtual ~RegionScanner() = default;
  // Length of the complete region (a prefix of `region`), or nullopt while more text is
  // needed, or kNotACall when the start marker opened no call after all (its text is
  // reported as text and scanning resumes right after it).
  virtual std::optional<size_t> end(std::string_view region) = 0;
  static constexpr size_t kNotACall = std::string_view::npos;
  // Formats without an end tag (mistral, llama3's <|python_tag|>): at end of stream the
  // text so far is the call. Others report an unterminated call.
  virtual bool complete_at_end_of_stream() const { return false; }
};

// The declared tools a parse may consult: xml-like formats whose values are text convert
// them to the declared parameter types.
class ToolSchemas {
 public:
  explicit ToolSchemas(const std::vector<ToolSpec>* tools = nullptr) : tools_(tools) {}
  // The schema of `tool`'s parameter `name`, or nullptr when unknown.
  const nlohmann::ordered_json* parameter(std::string_view tool, std::string_view name) const;
  // The declaration of `tool`, or nullptr when none (or no tools) are declared.
  const ToolSpec* tool(std::string_view name) const;
  // Whether tools are declared at all (then only declared names are accepted).
  bool any() const { return tools_ && !tools_->empty(); }

 private:
  const std::vector<ToolSpec>* tools_;
};

class ToolCallParser {
 public:
  virtual ~ToolCallParser() = default;
  virtual ToolCallFormat format() const = 0;

  // Markers that open a call region.
  virtual std::vector<std::string> start_markers() const = 0;
  // A scanner for a region opened by `marker` (one of start_markers()).
  virtual std::unique_ptr<RegionScanner> scanner(std::string_view marker) const = 0;
  // A complete region (start marker included) -> its calls, in order. Throws
  // ToolCallParseError when malformed.
  virtual std::vector<ToolCall> parse(std::string_view region, const ToolSchemas& schemas) const = 0;

  // Whether `marker` opens a call only at the start of a line (after blanks at most):
  // a marker that also occurs in ordinary text, e.g. inside a JSON string, which never
  // holds a raw newline.
  virtual bool starts_only_a_line(std::string_view /*marker*/) const { return false; }

  // Markers around reasoning; default <think> ... </think>.
  virtual std::vector<std::string> reasoning_open_markers() const { return {"<think>"}; }
  virtual std::vector<std::string> reasoning_close_markers() const { return {"</think>"}; }
  // Protocol tags outside calls that are neither text nor reasoning (Harmony's channel
  // headers); reported as text events with empty text.
  virtual std::vector<std::string> markup_markers() const { return {}; }
};

std::unique_ptr<ToolCallParser> make_tool_call_parser(ToolCallFormat format);

// Parses a complete text (no streaming): the calls of every region found, in order.
// Throws ToolCallParseError on the first malformed region.
std::vector<ToolCall> parse_tool_calls(ToolCallFormat format,
                                       std::string_view text,
                                       const std::vector<ToolSpec>* tools = nullptr);

}  // namespace lmx::chat
