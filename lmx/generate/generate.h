// generate(): a stream of events (text chunks, tool calls, a final info) over the token
// loop, through the streaming detokenizer and the stop-string filter. Consumed by pull
// (next()) or by callback (run()); cancel() from any thread stops it between steps.
#pragma once

#include <atomic>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

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
};

struct GenerationEvent {
  enum class Kind { text, tool_call, info };
  Kind kind = Kind::text;
  std::string text;        // text: the new chunk; tool_call: the raw call text
  GenerationInfo info;     // info only
};

struct GenerateOptions {
  std::set<int32_t> eos_ids;            // generation stops (reason stop) on any of these
  std::vector<std::string> stop_strings;  // stop before the first occurrence; never emitted
  bool skip_special_tokens = true;
  TokenIteratorOptions iterator;
};

// EOS ids as the reference merges them: config.json eos_token_id (root or text_config),
// replaced by generation_config.json's when present, plus the tokenizer's eos, plus
// `extra` tokens (by text; unknown ones throw InvalidArgument).
std::set<int32_t> collect_eos_ids(const io::ModelFolder& folder, const tokenizer::Tokenizer& tok,
                                  const std::vector<std::string>& extra = {});

class Generation {
 public:
  Generation(models::LanguageModel& model, const tokenizer::Tokenizer& tok, std::vector<int32_t> prompt,
             const GenerateParameters& params, GenerateOptions options, nn::KVCacheList* cache = nullptr);
  // The next event; after the info event, nullopt.
  std::optional<GenerationEvent> next();
  // Stops at the next step boundary (thread-safe); the stream then ends with info
  // (stop reason cancelled).
  void cancel() { cancel_.store(true); }
  // Tokens generated so far (including the stop token, if any).
  const std::vector<int32_t>& tokens() const { return tokens_; }

 private:
  std::optional<GenerationEvent> finish(StopReason reason);
  // Ends the stream: flushes held text (as one text event) before the info event.
  std::optional<GenerationEvent> end(StopReason reason, bool flush_detokenizer);
  // Moves the part of pending_ that cannot start a stop string into the returned text.
  std::string release_safe_text(bool final);

  std::atomic<bool> cancel_{false};
  GenerateOptions options_;
  std::unique_ptr<TokenIterator> it_;
  tokenizer::StreamingDetokenizer detok_;
  std::vector<int32_t> tokens_;
  std::string pending_;
  std::optional<StopReason> final_reason_;
  bool info_sent_ = false;
};

}  // namespace lmx::generate
