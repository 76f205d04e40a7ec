// gpt-oss's Harmony response format, routed by channel and recipient as the text streams.
//
// Harmony is a framed protocol rather than a call syntax: each message is a header
// (`<|start|>assistant`, `<|channel|>NAME`, optional ` to=RECIPIENT`, optional
// `<|constrain|>json`), `<|message|>`, a payload and a terminator (`<|end|>`, `<|call|>`,
// `<|return|>`). The prompt ends in `<|start|>assistant`, so the output begins inside
// the first header. Routing:
//   - analysis                         -> kReasoning, streamed;
//   - final, commentary without `to=`  -> kText, streamed (other channels too);
//   - any channel with `to=RECIPIENT`  -> a call, collected until its terminator: with
//     `<|call|>` its JSON payload becomes a kToolCall named RECIPIENT without its
//     `functions.` prefix (a built-in recipient such as `browser.search` keeps its full
//     name, so it is accepted only where a tool of that name is declared); ended any
//     other way (`<|end|>`, a new header, the end of the stream) it is rejected.
// Headers and terminators come out as text events with empty text; every event carries
// its frame's `channel` (and a call its `recipient`). Text outside any frame is final
// text. ToolCallProcessor uses this adapter for ToolCallFormat::kGptOss.
#pragma once

#include <memory>
#include <string_view>
#include <vector>

#include "lmx/chat/tool_call_processor.h"

namespace lmx::chat {

class HarmonyStreamAdapter {
 public:
  // options.tools, options.max_call_bytes apply as in ToolCallProcessor;
  // starts_in_reasoning is taken to mean the prompt opened an analysis message.
  explicit HarmonyStreamAdapter(ToolCallProcessorOptions options = {});
  ~HarmonyStreamAdapter();
  HarmonyStreamAdapter(HarmonyStreamAdapter&&) noexcept;
  HarmonyStreamAdapter& operator=(HarmonyStreamAdapter&&) noexcept;

  // Consumes one chunk (split anywhere); returns the events it completes.
  std::vector<ToolStreamEvent> feed(std::string_view chunk);
  // End of stream: held text is released, an open call is rejected.
  std::vector<ToolStreamEvent> finish();
  // True while a frame addressed to a recipient is being collected.
  bool in_tool_call() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace lmx::chat
