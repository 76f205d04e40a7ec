#include "lmx/generate/chat_session.h"

#include <nlohmann/json.hpp>

#include "lmx/core/error.h"

namespace lmx::generate {

ChatSession::ChatSession(std::shared_ptr<ModelContainer> container, std::string instructions,
                         GenerateParameters parameters)
    : container_(std::move(container)),
      instructions_(std::move(instructions)),
      parameters_(std::move(parameters)),
      messages_(std::make_unique<nlohmann::ordered_json>(nlohmann::ordered_json::array())) {
  if (!container_) throw InvalidArgument("ChatSession: no model container");
}

ChatSession::~ChatSession() = default;

const nlohmann::ordered_json& ChatSession::history() const { return *messages_; }

void ChatSession::clear() {
  *messages_ = nlohmann::ordered_json::array();
  cache_.clear();
  ledger_.clear();
}

std::vector<int32_t> ChatSession::transcript_tokens() const {
  if (container_->has_chat_template()) {
    UserInput input;
    input.system_prompt = instructions_;
    input.messages = std::make_shared<nlohmann::ordered_json>(*messages_);
    return container_->prepare(input);
  }
  // No template (a base model): the turns as plain text, one per line.
  std::string text = instructions_.empty() ? "" : instructions_ + "\n";
  for (size_t i = 0; i < messages_->size(); ++i) {
    text += (*messages_)[i]["content"].get<std::string>();
    if (i + 1 < messages_->size()) text += "\n";
  }
  return container_->tokenizer().encode(text, true);
}

std::string ChatSession::stream_details(const std::string& text,
                                        const std::function<bool(const GenerationEvent&)>& on_event) {
  messages_->push_back({{"role", "user"}, {"content", text}});
  std::vector<int32_t> tokens = transcript_tokens();
  // Reuse the longest common prefix of the cached tokens; keep at least one token to feed.
  size_t common = 0;
  while (common < ledger_.size() && common < tokens.size() && ledger_[common] == tokens[common]) ++common;
  if (common == tokens.size()) --common;
  if (!cache_.empty() && common < ledger_.size()) {
    if (can_trim_cache(cache_)) {
      trim_cache(cache_, static_cast<int64_t>(ledger_.size() - common));
    } else {
      cache_.clear();
      common = 0;
    }
  }
  if (cache_.empty()) {
    cache_ = make_cache(container_->model(), parameters_);
    common = 0;
  }
  std::vector<int32_t> suffix(tokens.begin() + static_cast<std::ptrdiff_t>(common), tokens.end());
  GenerateOptions opts;
  opts.eos_ids = container_->eos_ids();
  std::string reply;
  std::vector<int32_t> generated;
  container_->perform([&](models::LanguageModel& model, const tokenizer::Tokenizer& tok) {
    Generation gen(model, tok, suffix, parameters_, opts, &cache_);
    last_info_ = GenerationInfo{};
    last_info_.stop_reason = gen.run([&](const GenerationEvent& e) {
      if (e.kind == GenerationEvent::Kind::text) reply += e.text;
      if (e.kind == GenerationEvent::Kind::info) last_info_ = e.info;
      return on_event(e);
    });
    generated = gen.tokens();
  });
  last_info_.cached_prompt_tokens = static_cast<int64_t>(common);
  // The cache holds the prompt and every generated token but the last sampled one.
  ledger_ = tokens;
  if (!generated.empty()) ledger_.insert(ledger_.end(), generated.begin(), generated.end() - 1);
  messages_->push_back({{"role", "assistant"}, {"content", reply}});
  return reply;
}

std::string ChatSession::stream_response(const std::string& text,
                                         const std::function<bool(const std::string&)>& on_chunk) {
  return stream_details(text, [&](const GenerationEvent& e) {
    return e.kind != GenerationEvent::Kind::text || on_chunk(e.text);
  });
}

std::string ChatSession::respond(const std::string& text) {
  return stream_details(text, [](const GenerationEvent&) { return true; });
}

}  // namespace lmx::generate
