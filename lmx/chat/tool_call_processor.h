// Streaming separation of a model's output into text, reasoning and tool calls.
//
//   ToolCallProcessor p(ToolCallFormat::kJson, {.tools = registry.specs()});
//   for (chunk : detokenized_chunks) for (auto& e : p.feed(chunk)) handle(e);
//   for (auto& e : p.finish()) handle(e);
//
// Chunks may split anything anywhere (markers, UTF-8 sequences are passed through
// unchanged). Only text that may be the start of a marker is held back.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "lmx/chat/tool.h"
#include "lmx/chat/tool_call_format.h"
#include "lmx/chat/tool_call_parser.h"

namespace lmx::chat {

struct ToolStreamEvent {
  enum class Kind {
    kText,              // plain text (`text`); empty for protocol markup (Harmony headers)
    kReasoning,         // content of a <think> block (`text`), streamed as it comes
    kToolCall,          // a complete, parsed call (`call`)
    kRejectedToolCall,  // a malformed, unterminated or undeclared call (`error`)
  };
  Kind kind = Kind::kText;
  std::string text;
  ToolCall call;
  std::string error;
  // Harmony (gpt_oss) only: the channel of the message the event belongs to
  // ("analysis", "commentary", "final", ...) and, for calls, the `to=` recipient
  // ("functions.get_weather"). Empty for other formats.
  std::string channel;
  std::string recipient;
  // The exact input this event accounts for, markers included: the concatenation of
  // `raw` over all events equals the concatenation of all chunks fed. Several calls of
  // one region (a Kimi section, an LFM2 list) share it: the first carries it, the others
  // have it empty.
  std::string raw;
};

struct ToolCallProcessorOptions {
  // Declared tools: calls to other names are rejected, xml-like values are converted to
  // the declared types. Empty: any name is accepted.
  std::vector<ToolSpec> tools;
  // The template already opened the reasoning block (the prompt ends with "<think>\n"):
  // the stream starts inside reasoning.
  bool starts_in_reasoning = false;
  // A call region longer than this is rejected (its text is kept in `raw`/`error`) and
  // what follows is treated as text again.
  size_t max_call_bytes = size_t{16} << 20;
};

class ToolCallProcessor {
 public:
  explicit ToolCallProcessor(ToolCallFormat format, ToolCallProcessorOptions options = {});
  ~ToolCallProcessor();
  ToolCallProcessor(ToolCallProcessor&&) noexcept;
  ToolCallProcessor& operator=(ToolCallProcessor&&) noexcept;

  // Consumes one chunk; returns the events it completes.
  std::vector<ToolStreamEvent> feed(std::string_view chunk);
  // End of stream: held-back text is released, a call of a format without an end tag is
  // parsed, an unterminated call is rejected. Further feeds throw InvalidArgument.
  std::vector<ToolStreamEvent> finish();

  ToolCallFormat format() const;
  // True while a call region is open (its text is being collected).
  bool in_tool_call() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

// Feeds `text` whole and finishes.
std::vector<ToolStreamEvent> process_tool_calls(ToolCallFormat format,
                                                std::string_view text,
                                                ToolCallProcessorOptions options = {});

}  // namespace lmx::chat
