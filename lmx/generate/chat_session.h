// ChatSession: a multi-turn conversation over a ModelContainer. It keeps the history
// and the KV cache; each turn renders the whole transcript, and only the part after
// the longest common token prefix with the cached tokens (the ledger) is prefilled:
// the cache is trimmed where the new prompt diverges, or rebuilt when it cannot trim.
// With a vision-language model, images and videos join user messages (add_image,
// add_video) and stay in the history; the cached prefix ends before the first image or
// video that differs (content hash).
#pragma once

#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "lmx/chat/tool.h"
#include "lmx/generate/chat_images.h"
#include "lmx/generate/generate.h"
#include "lmx/generate/model_container.h"
#include "lmx/vision/image_processor.h"
#include "lmx/vision/video_processor.h"

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
  // Every event (text, reasoning, tool calls, rejected tool calls, info; with tools,
  // one info per generation round; a token event per generated token when the
  // parameters ask for logprobs or top_logprobs).
  std::string stream_details(const std::string& text, const std::function<bool(const GenerationEvent&)>& on_event);
  // Forgets the history and the cache; keeps the instructions.
  void clear();
  // Vision-language models: an image for the next user message (an {"type": "image"}
  // part before its text), run through the model folder's image processor.
  // InvalidArgument for a text-only model or one without a chat template.
  void add_image(vision::Image image);
  // A video for the next user message (a {"type": "video"} part), its frames sampled and
  // run through the model folder's video processor (Qwen2-VL families); load_video's
  // errors, InvalidArgument for a model that takes no videos.
  void add_video(const std::filesystem::path& path, const vision::FrameSampling& sampling = {});

  // Writes the session (instructions, history, template variables) and its KV cache with
  // the token ledger to one file: a prompt-cache safetensors file (mlx-lm's layout) whose
  // metadata holds the session. restore() replaces this session's state with a saved one;
  // the file must come from the same model (config.json fingerprint), else
  // InvalidArgument; a malformed file gives FormatError naming it.
  void save(const std::filesystem::path& path) const;
  void restore(const std::filesystem::path& path);

  // Template variables passed to the chat template on every turn (e.g.
  // {"enable_thinking": false}, as mlx-lm's --chat-template-config); a JSON object.
  void set_template_context(const nlohmann::ordered_json& context);
  // Called during each turn's prefill with (tokens processed, total to prefill).
  void set_prefill_progress(std::function<void(int64_t, int64_t)> fn) { prefill_progress_ = std::move(fn); }
  // Extra end-of-sequence tokens (by text), as --extra-eos-token.
  void set_extra_eos(std::vector<std::string> tokens) { extra_eos_ = std::move(tokens); }
  // Each reply ends before the first of these texts (GenerateOptions::stop_strings).
  void set_stop_strings(std::vector<std::string> stops) { stop_strings_ = std::move(stops); }

  // Tools the model may call. Their schemas go to the chat template's `tools`; each
  // call the model makes (in ModelContainer::tool_call_format()) is run through the
  // registry, the assistant message gets its `tool_calls` and a `tool` message the
  // result, and generation continues until the model answers without calls or
  // max_steps rounds of calls have run. A call that fails (unknown tool, arguments that
  // do not fit, a handler throwing lmx::Error) gets {"error": ...} as its result, so
  // the model can recover. Without tools, calls the model writes anyway are parsed,
  // reported as events and kept in the history, but not run.
  void set_tools(std::shared_ptr<const chat::ToolRegistry> tools, int max_steps = 8);
  // The wired-memory ticket each turn holds over its prefill and decode.
  void set_wired_ticket(std::optional<WiredTicket> ticket) { wired_ticket_ = std::move(ticket); }

  const GenerationInfo& last_info() const { return last_info_; }
  // The messages so far (OpenAI style, without the instructions).
  const nlohmann::ordered_json& history() const;
  GenerateParameters& parameters() { return parameters_; }

 private:
  // The video processor's outputs for `videos` (with their seconds per temporal patch and
  // timestamps) added to `in`.
  void add_videos(models::vlm::ImageInputs& in, const std::vector<vision::Video>& videos) const;
  struct Prompt {
    std::vector<int32_t> tokens;
    std::vector<int32_t> identity;  // tokens, image placeholders by image (ChatImage)
    std::vector<std::pair<size_t, size_t>> image_spans;  // images' and videos' expansions
    std::vector<size_t> image_items;                      // their entries of images_
    bool in_reasoning = false;  // the template left a <think> block open
  };
  struct Round {
    std::string text, reasoning;
    std::vector<chat::ToolCall> calls;
    bool stopped = false;  // on_event asked to stop
  };
  Prompt transcript() const;
  // One generation over the current transcript, reusing the cached prefix.
  Round generate_round(const std::function<bool(const GenerationEvent&)>& on_event);

  std::shared_ptr<ModelContainer> container_;
  std::string instructions_;
  GenerateParameters parameters_;
  std::unique_ptr<nlohmann::ordered_json> messages_;
  std::unique_ptr<nlohmann::ordered_json> template_context_;  // object or null
  std::function<void(int64_t, int64_t)> prefill_progress_;
  std::vector<std::string> extra_eos_;
  std::vector<std::string> stop_strings_;
  std::shared_ptr<const chat::ToolRegistry> tools_;
  int max_tool_steps_ = 8;
  std::optional<WiredTicket> wired_ticket_;
  std::vector<ChatImage> images_;          // the history's images and videos, in order
  std::vector<ChatImage> pending_images_;  // for the next user message
  std::unique_ptr<vision::ImageProcessor> image_processor_;
  std::unique_ptr<vision::VideoProcessor> video_processor_;
  nn::KVCacheList cache_;
  std::vector<int32_t> ledger_;  // identities of the tokens whose keys / values the cache holds
  // Caches that cannot be trimmed (recurrent state): a copy taken at the last turn
  // boundary (the prompt but its last token), and how many ledger tokens it holds.
  nn::KVCacheList snapshot_;
  size_t snapshot_tokens_ = 0;
  GenerationInfo last_info_;
};

}  // namespace lmx::generate
