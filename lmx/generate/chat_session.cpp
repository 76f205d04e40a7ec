#include "lmx/generate/chat_session.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "lmx/base/error.h"
#include "lmx/base/json_nesting.h"
#include "lmx/generate/prompt_cache.h"
#include "lmx/io/safetensors.h"
#include "lmx/models/vlm/image_inputs.h"
#include "lmx/nn/state_cache.h"

namespace lmx::generate {
namespace {

constexpr const char* kSessionKey = "lmx.chat_session";
constexpr const char* kFingerprintKey = ModelContainer::kFingerprintKey;

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
  if (!images_.empty() || !pending_images_.empty()) {
    throw InvalidArgument("ChatSession: a conversation with images or videos cannot be saved (the file keeps no pixels)");
  }
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
      throw InvalidArgument(file + ": the session was saved with another model (its config or weights differ from " +
                            container_->path().string() + ")");
    }
    check_json_nesting(it->second, file + ": session metadata");
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
    // Compared as JSON values: a float far past int's range never reaches a conversion.
    if (session.at("version") != 1)
      throw FormatError(file + ": session version " + session.at("version").dump() + " is not supported");
    instructions = session.at("instructions").get<std::string>();
    messages = session.at("messages");
    context = session.at("template_context");
    if (!session.at("ledger").is_array()) throw FormatError(file + ": session ledger is not an array");
    for (const auto& id : session.at("ledger")) {
      const bool fits = (id.is_number_unsigned() && id.get<uint64_t>() <= static_cast<uint64_t>(INT32_MAX)) ||
                        (id.is_number_integer() && !id.is_number_unsigned() && id.get<int64_t>() >= INT32_MIN &&
                         id.get<int64_t>() <= INT32_MAX);
      if (!fits) throw FormatError(file + ": session ledger entry " + id.dump() + " is not a token id");
      ledger.push_back(static_cast<int32_t>(id.get<int64_t>()));
    }
  } catch (const nlohmann::json::exception& e) {
    throw FormatError(file + ": session metadata: " + e.what());
  }
  // Everything is checked before anything is replaced: a refused file changes nothing.
  if (!messages.is_array()) throw FormatError(file + ": session 'messages' is not a list");
  for (size_t i = 0; i < messages.size(); ++i) {
    const auto& m = messages[i];
    if (!m.is_object() || !m.contains("role") || !m["role"].is_string()) {
      throw FormatError(file + ": session 'messages[" + std::to_string(i) + "]' is not a message with a role");
    }
  }
  if (!context.is_null() && !context.is_object()) {
    throw FormatError(file + ": session 'template_context' is not an object");
  }
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
  snapshot_.clear();
  images_.clear();
  pending_images_.clear();
}

void ChatSession::clear() {
  *messages_ = nlohmann::ordered_json::array();
  images_.clear();
  pending_images_.clear();
  cache_.clear();
  ledger_.clear();
  snapshot_.clear();
}

void ChatSession::add_image(vision::Image image) {
  const auto* vlm = dynamic_cast<const models::vlm::VisionLanguageModel*>(&container_->model());
  if (!vlm) throw InvalidArgument("ChatSession: " + container_->model().model_type() + " is not a vision-language model");
  if (!container_->has_chat_template()) throw InvalidArgument("ChatSession: images need the model's chat template");
  if (!image_processor_) image_processor_ = vision::load_image_processor(container_->folder().path());
  ChatImage ci{std::move(image), 0, {}, std::nullopt};
  ci.hash = image_hash(ci.image);
  ci.inputs = models::vlm::image_inputs(image_processor_->process({ci.image}));
  pending_images_.push_back(std::move(ci));
}

void ChatSession::add_video(const std::filesystem::path& path, const vision::FrameSampling& sampling) {
  const auto* vlm = dynamic_cast<const models::vlm::VisionLanguageModel*>(&container_->model());
  if (!vlm) throw InvalidArgument("ChatSession: " + container_->model().model_type() + " is not a vision-language model");
  if (vlm->video_token_id() < 0) throw InvalidArgument("ChatSession: " + vlm->model_type() + " takes no videos");
  if (!container_->has_chat_template()) throw InvalidArgument("ChatSession: videos need the model's chat template");
  if (!video_processor_) video_processor_ = vision::load_video_processor(container_->folder().path());
  ChatImage ci;
  ci.video = vision::load_sampled_video(path, *video_processor_, sampling);
  ci.hash = video_hash(*ci.video);
  add_videos(ci.inputs, {*ci.video});
  pending_images_.push_back(std::move(ci));
}

void ChatSession::add_videos(models::vlm::ImageInputs& in, const std::vector<vision::Video>& videos) const {
  models::vlm::add_video_inputs(in, video_processor_->process(videos), vision::seconds_per_grid(videos, *video_processor_));
  for (const auto& v : videos) in.video_timestamps.push_back(video_processor_->timestamps(v));
}

void ChatSession::set_tools(std::shared_ptr<const chat::ToolRegistry> tools, int max_steps) {
  if (max_steps < 1) throw InvalidArgument("ChatSession: max tool steps must be >= 1, got " + std::to_string(max_steps));
  tools_ = std::move(tools);
  max_tool_steps_ = max_steps;
}

ChatSession::Prompt ChatSession::transcript() const {
  Prompt out;
  if (container_->has_chat_template()) {
    UserInput input;
    input.system_prompt = instructions_;
    input.messages = std::make_shared<nlohmann::ordered_json>(*messages_);
    if (template_context_ && !template_context_->is_null())
      input.extra_context = std::make_shared<nlohmann::ordered_json>(*template_context_);
    if (tools_ && !tools_->specs().empty()) input.tools = std::make_shared<nlohmann::ordered_json>(tools_->to_json());
    // The template writes the special tokens itself (as transformers' apply_chat_template).
    const std::string text = container_->render_prompt(input);
    const size_t open = text.rfind("<think>");
    out.in_reasoning = open != std::string::npos && text.find("</think>", open) == std::string::npos;
    out.tokens = container_->tokenizer().encode(text, false);
    out.identity = out.tokens;
    if (const auto* vlm = dynamic_cast<const models::vlm::VisionLanguageModel*>(&container_->model())) {
      ExpandedPrompt e = expand_chat_images(*vlm, out.tokens, images_, container_->tokenizer());
      out.tokens = std::move(e.tokens);
      out.identity = std::move(e.identity);
      out.image_spans = std::move(e.spans);
      out.image_items = std::move(e.items);
    }
    return out;
  }
  // No template (a base model): the turns as plain text, one per line.
  std::string text = instructions_.empty() ? "" : instructions_ + "\n";
  for (size_t i = 0; i < messages_->size(); ++i) {
    text += (*messages_)[i]["content"].get<std::string>();
    if (i + 1 < messages_->size()) text += "\n";
  }
  out.tokens = container_->tokenizer().encode(text, true);
  out.identity = out.tokens;
  return out;
}

ChatSession::Round ChatSession::generate_round(const std::function<bool(const GenerationEvent&)>& on_event) {
  const Prompt prompt = transcript();
  const std::vector<int32_t>& tokens = prompt.tokens;
  // Reuse the longest common prefix of the cached tokens; keep at least one token to feed.
  size_t common = 0;
  while (common < ledger_.size() && common < tokens.size() && ledger_[common] == prompt.identity[common]) ++common;
  if (common == tokens.size()) --common;
  // Images: each one whose placeholders are not all cached is fed whole with this round.
  // Starting over when a cached image is dropped (the model's image positions, e.g.
  // Qwen2-VL's rope_deltas, count it) or when the model's image tokens must see the whole
  // prompt in one call (Gemma 3's and PaliGemma's blocks).
  auto* vlm = dynamic_cast<models::vlm::VisionLanguageModel*>(&container_->model());
  std::vector<vision::Image> fed;
  std::vector<vision::Video> fed_videos;
  if (vlm) {
    const bool dropped = std::any_of(ledger_.begin() + static_cast<std::ptrdiff_t>(std::min(common, ledger_.size())),
                                     ledger_.end(), [](int32_t t) { return t < 0; });
    for (const auto& [begin, end] : prompt.image_spans) {
      if (end > common) common = std::min(common, begin);
    }
    const bool new_images = std::any_of(prompt.image_spans.begin(), prompt.image_spans.end(),
                                        [&](const std::pair<size_t, size_t>& s) { return s.second > common; });
    if (dropped || (new_images && common > 0 && vlm->image_calls_need_whole_prompt())) common = 0;
  }
  if (!cache_.empty() && common < ledger_.size()) {
    if (can_trim_cache(cache_)) {
      trim_cache(cache_, static_cast<int64_t>(ledger_.size() - common));
    } else if (!snapshot_.empty() && snapshot_tokens_ <= common) {
      // A state cannot be trimmed: go back to the last turn boundary and re-prefill from there.
      cache_ = copy_cache(snapshot_);
      common = snapshot_tokens_;
    } else {
      cache_.clear();
      common = 0;
    }
  }
  if (cache_.empty()) {
    cache_ = make_cache(container_->model(), parameters_);
    common = 0;
  }
  for (size_t k = 0; vlm && k < prompt.image_spans.size(); ++k) {  // after any restart above
    if (prompt.image_spans[k].first < common) continue;
    const ChatImage& item = images_[prompt.image_items[k]];
    if (item.is_video()) {
      fed_videos.push_back(*item.video);
    } else {
      fed.push_back(item.image);
    }
  }
  std::vector<int32_t> suffix(tokens.begin() + static_cast<std::ptrdiff_t>(common), tokens.end());
  const bool holds_state = std::any_of(cache_.begin(), cache_.end(), [](const std::unique_ptr<nn::KVCache>& c) {
    return dynamic_cast<const nn::StateCache*>(c.get()) != nullptr;
  });
  if (holds_state && suffix.size() > 1) {
    // Snapshot at this turn boundary: the prompt but its last token (fed by the generation).
    try {
      container_->perform([&](models::LanguageModel& model, const tokenizer::Tokenizer&) {
        extend_cache(model, cache_, std::vector<int32_t>(suffix.begin(), suffix.end() - 1), parameters_);
      });
    } catch (...) {
      cache_.clear();
      ledger_.clear();
      snapshot_.clear();
      throw;
    }
    snapshot_ = copy_cache(cache_);
    snapshot_tokens_ = tokens.size() - 1;
    common = tokens.size() - 1;
    suffix.erase(suffix.begin(), suffix.end() - 1);
  }
  GenerateParameters params = parameters_;
  if (!fed.empty() || !fed_videos.empty()) {  // the images' (videos') placeholders in one prefill step
    params.prefill_step_size = std::max<int>(params.prefill_step_size, static_cast<int>(suffix.size()));
  }
  GenerateOptions opts;
  opts.eos_ids = container_->eos_ids(extra_eos_);
  opts.stop_strings = stop_strings_;
  opts.token_events = parameters_.logprobs || parameters_.top_logprobs > 0;
  opts.iterator.on_prefill_progress = prefill_progress_;
  opts.iterator.wired_ticket = wired_ticket_;
  if (container_->has_chat_template()) {
    // Tool calls and reasoning come as their own events (text is what remains).
    opts.tool_call_format = container_->tool_call_format();
    if (tools_) opts.tool_calls.tools = tools_->specs();
    opts.tool_calls.starts_in_reasoning = prompt.in_reasoning;
  }
  Round round;
  std::vector<int32_t> generated;
  try {
    container_->perform([&](models::LanguageModel& model, const tokenizer::Tokenizer& tok) {
      if (!fed.empty() || !fed_videos.empty()) {
        models::vlm::ImageInputs inputs =
            fed.empty() ? models::vlm::ImageInputs{} : models::vlm::image_inputs(image_processor_->process(fed));
        if (!fed_videos.empty()) add_videos(inputs, fed_videos);
        static_cast<models::vlm::VisionLanguageModel&>(model).set_images(std::move(inputs));
      }
      Generation gen(model, tok, suffix, params, opts, &cache_);
      last_info_ = GenerationInfo{};
      last_info_.stop_reason = gen.run([&](const GenerationEvent& e) {
        switch (e.kind) {
          case GenerationEvent::Kind::text: round.text += e.text; break;
          case GenerationEvent::Kind::reasoning: round.reasoning += e.text; break;
          case GenerationEvent::Kind::tool_call: round.calls.push_back(e.call); break;
          // Kept as text, so that nothing the model wrote is lost from the history.
          case GenerationEvent::Kind::rejected_tool_call: round.text += e.text; break;
          case GenerationEvent::Kind::info: last_info_ = e.info; break;
          case GenerationEvent::Kind::token: break;
        }
        const bool go_on = on_event(e);
        if (!go_on) round.stopped = true;
        return go_on;
      });
      generated = gen.tokens();
    });
  } catch (...) {
    // The cache may hold part of this round: forget it rather than trust it.
    if (vlm) vlm->set_images({});
    cache_.clear();
    ledger_.clear();
    snapshot_.clear();
    throw;
  }
  last_info_.cached_prompt_tokens = static_cast<int64_t>(common);
  // The cache holds the prompt and every generated token but the last sampled one; a
  // round cancelled during prefill holds only part of the prompt.
  ledger_ = prompt.identity;
  if (!generated.empty()) ledger_.insert(ledger_.end(), generated.begin(), generated.end() - 1);
  const auto held = static_cast<size_t>(cache_.empty() ? 0 : cache_[0]->offset());
  if (held < ledger_.size()) ledger_.resize(held);
  return round;
}

std::string ChatSession::stream_details(const std::string& text,
                                        const std::function<bool(const GenerationEvent&)>& on_event) {
  const size_t before = messages_->size(), images_before = images_.size();
  if (pending_images_.empty()) {
    messages_->push_back({{"role", "user"}, {"content", text}});
  } else {
    nlohmann::ordered_json content = nlohmann::ordered_json::array();
    for (const ChatImage& ci : pending_images_) content.push_back({{"type", ci.is_video() ? "video" : "image"}});
    content.push_back({{"type", "text"}, {"text", text}});
    messages_->push_back({{"role", "user"}, {"content", std::move(content)}});
    for (ChatImage& ci : pending_images_) images_.push_back(std::move(ci));
    pending_images_.clear();
  }
  try {
    for (int step = 0;; ++step) {
      Round round = generate_round(on_event);
      nlohmann::ordered_json reply = {{"role", "assistant"}, {"content", round.text}};
      if (!round.reasoning.empty()) reply["reasoning_content"] = round.reasoning;
      if (!round.calls.empty()) {
        reply["tool_calls"] = nlohmann::ordered_json::array();
        for (const auto& c : round.calls) reply["tool_calls"].push_back(c.to_json());
      }
      messages_->push_back(std::move(reply));
      // Calls run only when the model finished its message (a reply cut by max_tokens or
      // stopped by the caller is returned as is), and at most max_tool_steps_ rounds.
      const bool run_tools = tools_ && !round.calls.empty() && !round.stopped &&
                             last_info_.stop_reason == StopReason::stop && step < max_tool_steps_;
      if (!run_tools) return round.text;
      for (const auto& call : round.calls) {
        std::string result;
        try {
          result = tools_->execute(call);
        } catch (const Error& e) {
          result = nlohmann::ordered_json{{"error", e.what()}}.dump();
        }
        messages_->push_back({{"role", "tool"}, {"tool_call_id", call.id}, {"name", call.name}, {"content", result}});
      }
    }
  } catch (...) {
    messages_->erase(messages_->begin() + static_cast<std::ptrdiff_t>(before), messages_->end());
    images_.resize(images_before);
    throw;
  }
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
