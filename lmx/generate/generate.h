// generate(): a stream of events (text chunks, tool calls, a final info) over the token
// loop, through the streaming detokenizer and the stop-string filter. Consumed by pull
// (next()) or by callback (run()); cancel() from any thread stops it between steps.
#pragma once

#include <atomic>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <stop_token>
#include <string>
#include <vector>

#include "lmx/chat/tool_call_processor.h"
#include "lmx/generate/token_iterator.h"
#include "lmx/io/model_folder.h"
#include "lmx/tokenizer/tokenizer.h"

namespace lmx::generate {

enum class StopReason { stop, length, cancelled };
const char* stop_reason_name(StopReason r);

struct GenerationInfo {
  int64_t prompt_tokens = 0;
  int64_t cached_prompt_tokens = 0;
  int64_t generated_tokens = 0;
  double prompt_seconds = 0;
  double generation_seconds = 0;
  double prompt_tps = 0;
  double generation_tps = 0;
  size_t peak_memory_bytes = 0;
  StopReason stop_reason = StopReason::length;
  // Speculative decoding (0 without a draft model): tokens drafted and accepted.
  int64_t draft_tokens = 0;
  int64_t accepted_draft_tokens = 0;
};


struct GenerationEvent {
  // token events come only with GenerateOptions::token_events, one per generated
  // token, before the text that token releases; text events are the same either way.
  // With GenerateOptions::tool_call_format, text is split further: reasoning (the
  // content of a <think> block), tool_call (a complete, parsed call) and
  // rejected_tool_call (a malformed, unterminated or undeclared call, never dropped).
  enum class Kind { text, tool_call, info, token, reasoning, rejected_tool_call };
  Kind kind = Kind::text;
  std::string text;        // text / reasoning: the new chunk; (rejected_)tool_call: the raw call text
  GenerationInfo info;     // info only
  TokenLogprob token;      // token only (logprob filled when params.logprobs / top_logprobs)
  chat::ToolCall call;     // tool_call only
  std::string error;       // rejected_tool_call only: why
};

struct GenerateOptions {
  std::set<int32_t> eos_ids;            // generation stops (reason stop) on any of these
  std::vector<std::string> stop_strings;  // stop before the first occurrence; never emitted
  bool skip_special_tokens = true;
  bool token_events = false;  // also emit a token event per generated token
  // When set, the text passes through a tool-call processor of this format (see
  // GenerationEvent); tool_calls declares the tools and whether the prompt already
  // opened a reasoning block.
  std::optional<chat::ToolCallFormat> tool_call_format;
  chat::ToolCallProcessorOptions tool_calls;
  // iterator.wired_ticket: the wired-memory ticket held over prefill and decode.
  TokenIteratorOptions iterator;
};

// The text side of a generation: generated tokens through the streaming detokenizer,
// the stop-string filter (a partial match is held back until it is decided) and, with
// options.tool_call_format, the tool-call processor, as text / reasoning / tool_call
// events. The caller feeds tokens (EOS excluded) and ends it.
class TextStream {
 public:
  TextStream(const tokenizer::Tokenizer& tok, const GenerateOptions& options);
  // Queues what this token releases. True when a stop string appeared: the text up to
  // it is kept and the stream must end (end(false)).
  bool add(int32_t token, std::deque<GenerationEvent>& out);
  // Queues the held text (and the detokenizer's rest with flush_detokenizer) and
  // flushes the tool-call processor.
  void end(bool flush_detokenizer, std::deque<GenerationEvent>& out);

 private:
  // Queues released text as text events, or through the tool-call processor; `final`
  // also flushes the processor.
  void emit(std::string text, bool final, std::deque<GenerationEvent>& out);
  // Moves the part of pending_ that cannot start a stop string into the returned text.
  std::string release_safe_text();

  std::vector<std::string> stop_strings_;
  tokenizer::StreamingDetokenizer detok_;
  std::string pending_;
  std::unique_ptr<chat::ToolCallProcessor> tool_processor_;
};

// EOS ids as the reference merges them: config.json eos_token_id (root or text_config),
// replaced by generation_config.json's when present, plus the tokenizer's eos, plus
// `extra` tokens (by text; unknown ones throw InvalidArgument).
std::set<int32_t> collect_eos_ids(const io::ModelFolder& folder, const tokenizer::Tokenizer& tok,
                                  const std::vector<std::string>& extra = {});

// XTC's tokens that are never dropped, as mlx-lm fills them when unset: the newline
// and the EOS tokens (only when xtc_probability > 0).
void default_xtc_special_tokens(GenerateParameters& params, const tokenizer::Tokenizer& tok,
                                const std::set<int32_t>& eos_ids);

class Generation {
 public:
  Generation(models::LanguageModel& model, const tokenizer::Tokenizer& tok, std::vector<int32_t> prompt,
             const GenerateParameters& params, GenerateOptions options, nn::KVCacheList* cache = nullptr);
  // The next event; after the info event, nullopt. Errors inside generation (other
  // than cancellation) propagate from here.
  std::optional<GenerationEvent> next();
  // Callback consumption: calls fn for each event until it returns false (then the
  // generation stops; no further events) or the stream ends. Returns the stop reason
  // (cancelled when fn stopped it).
  StopReason run(const std::function<bool(const GenerationEvent&)>& fn);
  // Stops at the next step boundary (thread-safe), or a wait for wired-memory admission;
  // the stream then ends with info (stop reason cancelled).
  void cancel() {
    cancel_.store(true);
    stop_.request_stop();
  }
  // Tokens generated so far (including the stop token, if any).
  const std::vector<int32_t>& tokens() const { return tokens_; }

 private:
  // Runs the token loop until it has queued at least one event (or the stream ended).
  void produce();
  GenerationEvent finish(StopReason reason);
  // Ends the stream: queues the held text, then the info event.
  void end(StopReason reason, bool flush_detokenizer);

  std::atomic<bool> cancel_{false};
  std::stop_source stop_;
  GenerateOptions options_;
  GenerateParameters params_;
  std::unique_ptr<TokenIterator> it_;
  TextStream text_;
  std::vector<int32_t> tokens_;
  std::deque<GenerationEvent> queue_;  // events produced but not yet returned
  std::optional<StopReason> final_reason_;
  bool info_sent_ = false;
};

// generate_tokens(): the raw id stream (no detokenizer, no stop strings); stops at EOS
// (not reported), max_tokens or cancellation.
class TokenGeneration {
 public:
  TokenGeneration(models::LanguageModel& model, std::vector<int32_t> prompt, const GenerateParameters& params,
                  std::set<int32_t> eos_ids = {}, nn::KVCacheList* cache = nullptr,
                  TokenIteratorOptions options = {});
  std::optional<TokenLogprob> next();
  // Calls fn per token until it returns false or the stream ends; returns the reason.
  StopReason run(const std::function<bool(const TokenLogprob&)>& fn);
  void cancel() {
    cancel_.store(true);
    stop_.request_stop();
  }
  // Counts and timings so far (stop_reason once the stream has ended).
  GenerationInfo info() const;

 private:
  std::optional<TokenLogprob> stop_with(StopReason reason);

  std::atomic<bool> cancel_{false};
  std::stop_source stop_;
  std::set<int32_t> eos_;
  std::unique_ptr<TokenIterator> it_;
  std::optional<StopReason> reason_;
};

inline TokenGeneration generate_tokens(models::LanguageModel& model, std::vector<int32_t> prompt,
                                       const GenerateParameters& params, std::set<int32_t> eos_ids = {}) {
  return TokenGeneration(model, std::move(prompt), params, std::move(eos_ids));
}

}  // namespace lmx::generate
