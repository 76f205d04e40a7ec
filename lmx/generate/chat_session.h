// ChatSession: a multi-turn conversation over a ModelContainer. It keeps the history
// and the KV cache; each turn renders the whole transcript, and only the part after
// the longest common token prefix with the cached tokens (the ledger) is prefilled:
// the cache is trimmed where the new prompt diverges, or rebuilt when it cannot trim.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "lmx/generate/generate.h"
#include "lmx/generate/model_container.h"

namespace lmx::generate {

class ChatSession {
 public:
  ChatSession(std::shared_ptr<ModelContainer> container, std::string instructions = "",
              GenerateParameters parameters = {});
  ~ChatSession();

  // The whole reply to `text`.
  std::string respond(const std::string& text);
  // Calls on_chunk with each text chunk (return false to stop early); returns the reply.
  std::string stream_response(const std::string& text, const std::function<bool(const std::string&)>& on_chunk);
  // Every event (text, tool calls, info).
  std::string stream_details(const std::string& text, const std::function<bool(const GenerationEvent&)>& on_event);
  // Forgets the history and the cache; keeps the instructions.
  void clear();

  const GenerationInfo& last_info() const { return last_info_; }
  // The messages so far (OpenAI style, without the instructions).
  const nlohmann::ordered_json& history() const;
  GenerateParameters& parameters() { return parameters_; }

 private:
  std::vector<int32_t> transcript_tokens() const;

  std::shared_ptr<ModelContainer> container_;
  std::string instructions_;
  GenerateParameters parameters_;
  std::unique_ptr<nlohmann::ordered_json> messages_;
  nn::KVCacheList cache_;
  std::vector<int32_t> ledger_;  // the tokens whose keys / values the cache holds
  GenerationInfo last_info_;
};

}  // namespace lmx::generate
