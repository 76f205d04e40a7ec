// Chat templates as transformers applies them: pick the template of a model folder,
// render messages + tools + special tokens + extra variables into a prompt.
#pragma once

#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "lmx/chat/template.h"

namespace lmx::chat {

// Named special tokens passed to the template (bos_token, eos_token, ...), as
// transformers passes tokenizer.special_tokens_map.
using SpecialTokens = std::vector<std::pair<std::string, std::string>>;

struct ChatRenderOptions {
  bool add_generation_prompt = true;
  // transformers' continue_final_message: cut the prompt right after the final
  // message's content so generation continues it (assistant prefill).
  bool continue_final_message = false;
  RenderOptions render;
};

class ChatTemplate {
 public:
  explicit ChatTemplate(std::string_view source);  // parses; throws TemplateSyntaxError

  // messages: OpenAI-style list; tools: list of JSON schemas or null; extra: object of
  // additional variables (e.g. enable_thinking) or null.
  std::string render(const nlohmann::ordered_json& messages,
                     const nlohmann::ordered_json& tools,
                     const nlohmann::ordered_json& extra,
                     const SpecialTokens& special_tokens,
                     const ChatRenderOptions& options = {}) const;

  // The same with template values: `messages`/`tools` already converted.
  std::string render_values(const Value& messages,
                            const Value& tools,
                            const Value& extra,
                            const SpecialTokens& special_tokens,
                            const ChatRenderOptions& options = {}) const;

  const Template& compiled() const { return template_; }

 private:
  Template template_;
};

// Where a chat template came from, for messages (`DIR/chat_template.jinja`, ...).
struct ChatTemplateSource {
  std::string text;
  std::string origin;
};

// tokenizer_config.json's `chat_template`: a string, or a list of {name, template}
// (`tool_use` when tools are given and present, else `default`). Throws FormatError.
ChatTemplateSource select_chat_template(const nlohmann::ordered_json& tokenizer_config,
                                        bool has_tools,
                                        std::string_view origin = "tokenizer_config.json");
// A model folder: chat_template.jinja first, else chat_template.json (processor
// folders), else tokenizer_config.json. Throws IoError / FormatError naming the
// folder or file when there is no template.
ChatTemplateSource select_chat_template(const std::filesystem::path& model_dir, bool has_tools);

// bos_token, eos_token, unk_token, sep_token, pad_token, cls_token, mask_token from
// a tokenizer_config (string or {"content": ...} forms).
SpecialTokens special_tokens_from_config(const nlohmann::ordered_json& tokenizer_config);

// `key=value` as given to `lmx template --var`: the value is parsed as JSON when it is
// valid JSON (true, 3, "x", [1], {"a": 1}), else taken as a plain string. Throws
// InvalidArgument without '=' or with an empty key.
std::pair<std::string, nlohmann::ordered_json> parse_template_variable(std::string_view assignment);

// Parsed templates shared by source text: a tokenizer keeps one of these so each
// template is parsed once however many requests render it. Thread-safe.
class ChatTemplateCache {
 public:
  std::shared_ptr<const ChatTemplate> get(const std::string& source);
  size_t size() const;

 private:
  mutable std::mutex mutex_;
  std::unordered_map<std::string, std::shared_ptr<const ChatTemplate>> cache_;
};

}  // namespace lmx::chat
