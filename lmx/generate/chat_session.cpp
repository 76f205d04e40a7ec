#include "lmx/generate/chat_session.h"

#include <nlohmann/json.hpp>

#include "lmx/core/error.h"
#include "lmx/generate/prompt_cache.h"
#include "lmx/io/safetensors.h"

namespace lmx::generate {
namespace {

constexpr const char* kSessionKey = "lmx.chat_session";
constexpr const char* kFingerprintKey = "lmx.model_fingerprint";

}  // namespace

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

void ChatSession::set_template_context(const nlohmann::ordered_json& context) {
  if (!context.is_null() && !context.is_object())
    throw InvalidArgument("chat template variables must be a JSON object, got " + context.dump());
  template_context_ = std::make_unique<nlohmann::ordered_json>(context);
}

void ChatSession::save(const std::filesystem::path& path) const {
  nlohmann::ordered_json session = {{"version", 1},
                                    {"instructions", instructions_},
                                    {"messages", *messages_},
                                    {"template_context", template_context_ ? *template_context_ : nullptr},
                                    {"ledger", ledger_}};
  save_prompt_cache(path, cache_, {{kSessionKey, session.dump()}, {kFingerprintKey, container_->fingerprint()}});
}

void ChatSession::restore(const std::filesystem::path& path) {
  const std::string file = path.string();
  nlohmann::ordered_json session;
  {
    const io::SafetensorsFile f = io::SafetensorsFile::open(path);
    const auto& meta = f.metadata();
    auto it = meta.find(std::string("1.") + kSessionKey);
    if (it == meta.end()) throw FormatError(file + ": not a chat session file (no '" + kSessionKey + "' metadata)");
    auto fp = meta.find(std::string("1.") + kFingerprintKey);
    if (fp == meta.end() || fp->second != container_->fingerprint()) {
      throw InvalidArgument(file + ": the session was saved with another model (config.json differs from " +
                            (container_->path() / "config.json").string() + ")");
    }
    try {
      session = nlohmann::ordered_json::parse(it->second);
    } catch (const nlohmann::json::exception& e) {
      throw FormatError(file + ": session metadata is not JSON: " + e.what());
    }
  }
  std::vector<int32_t> ledger;
  nlohmann::ordered_json messages, context;
  std::string instructions;
  try {
    if (session.at("version").get<int>() != 1)
      throw FormatError(file + ": session version " + session.at("version").dump() + " is not supported");
    instructions = session.at("instructions").get<std::string>();
    messages = session.at("messages");
    context = session.at("template_context");
    ledger = session.at("ledger").get<std::vector<int32_t>>();
  } catch (const nlohmann::json::exception& e) {
    throw FormatError(file + ": session metadata: " + e.what());
  }
  if (!messages.is_array()) throw FormatError(file + ": session 'messages' is not a list");
  nn::KVCacheList cache;
  if (!ledger.empty()) {
    PromptCache pc = load_prompt_cache(path);
    const int64_t layers = container_->model().num_layers();
    if (static_cast<int64_t>(pc.cache.size()) != layers) {
      throw FormatError(file + ": " + std::to_string(pc.cache.size()) + " caches for a model of " +
                        std::to_string(layers) + " layers");
    }
    if (pc.cache[0]->offset() != static_cast<int64_t>(ledger.size())) {
      throw FormatError(file + ": the cache holds " + std::to_string(pc.cache[0]->offset()) +
                        " positions but the ledger " + std::to_string(ledger.size()) + " tokens");
    }
    for (int32_t t : ledger) {
      if (t < 0 || t >= container_->model().vocab_size())
        throw FormatError(file + ": ledger token " + std::to_string(t) + " is outside the vocabulary");
    }
    cache = std::move(pc.cache);
  }
  instructions_ = std::move(instructions);
  *messages_ = std::move(messages);
  set_template_context(context);
  cache_ = std::move(cache);
  ledger_ = std::move(ledger);
}

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
    if (template_context_ && !template_context_->is_null())
      input.extra_context = std::make_shared<nlohmann::ordered_json>(*template_context_);
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
  std::vector<int32_t> tokens;
  try {
    tokens = transcript_tokens();
  } catch (...) {
    messages_->erase(messages_->end() - 1);  // a template error leaves the history as it was
    throw;
  }
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
  opts.eos_ids = container_->eos_ids(extra_eos_);
  opts.iterator.on_prefill_progress = prefill_progress_;
  std::string reply;
  std::vector<int32_t> generated;
  try {
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
  } catch (...) {
    // The cache may hold part of this turn: forget it rather than trust it.
    cache_.clear();
    ledger_.clear();
    messages_->erase(messages_->end() - 1);
    throw;
  }
  last_info_.cached_prompt_tokens = static_cast<int64_t>(common);
  // The cache holds the prompt and every generated token but the last sampled one; a
  // turn cancelled during prefill holds only part of the prompt.
  ledger_ = tokens;
  if (!generated.empty()) ledger_.insert(ledger_.end(), generated.begin(), generated.end() - 1);
  const auto held = static_cast<size_t>(cache_.empty() ? 0 : cache_[0]->offset());
  if (held < ledger_.size()) ledger_.resize(held);
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
