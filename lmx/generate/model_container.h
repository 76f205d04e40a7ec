// ModelContainer: the thread-safe owner of a loaded model, its tokenizer and
// configuration. perform() serializes access; prepare() turns user input (a prompt or
// chat messages) into prompt tokens through the chat template.
#pragma once

#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string_view>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "lmx/chat/tool_call_format.h"
#include "lmx/generate/constrained/constrained_decoding.h"
#include "lmx/generate/generate.h"
#include "lmx/models/load.h"
#include "lmx/tokenizer/tokenizer.h"

namespace lmx::generate {

struct UserInput {
  std::string prompt;                    // used when messages is empty
  std::string system_prompt;             // prepended as a system message when set
  std::shared_ptr<nlohmann::ordered_json> messages;  // OpenAI-style list (optional)
  std::shared_ptr<nlohmann::ordered_json> tools;     // JSON schemas (optional)
  std::shared_ptr<nlohmann::ordered_json> extra_context;  // template variables (optional)
  bool add_generation_prompt = true;
  bool ignore_chat_template = false;
};

// Load progress: the stage ("resolve": finding or downloading the folder, "weights",
// "tokenizer", "ready") and the fraction of the whole load done when it starts (ready: 1).
using LoadProgress = std::function<void(std::string_view stage, double fraction)>;

class ModelContainer {
 public:
  // A model folder or a Hugging Face repo id (downloads draw their own progress bar on a
  // terminal; see io::HubOptions).
  static std::shared_ptr<ModelContainer> load(const std::string& spec, const LoadProgress& progress = {});
  // The same with load options (options.device: where the weights go).
  static std::shared_ptr<ModelContainer> load(const std::string& spec, const models::LoadOptions& options,
                                              const LoadProgress& progress = {});

  // Runs fn with exclusive access to the model.
  template <typename Fn>
  auto perform(Fn&& fn) {
    std::lock_guard<std::mutex> lock(mutex_);
    return fn(*loaded_.model, tokenizer_);
  }
  // Prompt token ids for this input (chat template when the tokenizer has one).
  std::vector<int32_t> prepare(const UserInput& input) const;
  // prepare(input), then one generation with this model's EOS tokens, holding the model
  // for its duration: on_event gets every event (return false to stop). With input.tools
  // the tool calls (in tool_call_format()) and reasoning come as their own events.
  // Returns the final info.
  GenerationInfo generate(const UserInput& input, const GenerateParameters& params,
                          const std::function<bool(const GenerationEvent&)>& on_event);
  // The rendered prompt text (for debugging templates and --verbose).
  std::string render_prompt(const UserInput& input) const;
  bool has_chat_template() const;

  const tokenizer::Tokenizer& tokenizer() const { return tokenizer_; }
  const io::ModelFolder& folder() const { return loaded_.folder; }
  models::LanguageModel& model() { return *loaded_.model; }
  const std::filesystem::path& path() const { return path_; }
  double load_seconds() const { return load_seconds_; }
  std::set<int32_t> eos_ids(const std::vector<std::string>& extra = {}) const;
  // The tokenizer's vocabulary indexed for constrained decoding (with eos_ids()), built
  // on first use and shared by every constrained generation of this model.
  std::shared_ptr<const constrained::TokenVocabulary> constraint_vocabulary() const;
  // tokenizer_config.json as read at load (an empty object when the folder has none).
  const nlohmann::ordered_json& tokenizer_config() const { return *tokenizer_config_; }
  // Identifies the weights, not the path: model_type, layers, a hash of config.json and,
  // per weight file, its size and a hash of its safetensors header (tensor names,
  // dtypes, shapes, offsets). Session and prompt-cache files store it under
  // kFingerprintKey; a file made with another model is refused by it.
  const std::string& fingerprint() const { return fingerprint_; }
  static constexpr const char* kFingerprintKey = "lmx.model_fingerprint";
  // How this model writes tool calls: set_tool_call_format() when given, else
  // tokenizer_config's tool_parser_type, else markers in the chat template, else by
  // model_type, else json.
  chat::ToolCallFormat tool_call_format() const;
  void set_tool_call_format(std::optional<chat::ToolCallFormat> format) { tool_format_override_ = format; }

 private:
  ModelContainer(std::filesystem::path path, models::LoadedModel loaded, tokenizer::Tokenizer tok);
  std::filesystem::path path_;
  models::LoadedModel loaded_;
  tokenizer::Tokenizer tokenizer_;
  double load_seconds_ = 0;
  std::mutex mutex_;
  // Everything the chat template needs is read once at load, so renders neither touch
  // the folder again nor depend on it staying in place.
  std::shared_ptr<const nlohmann::ordered_json> tokenizer_config_;
  std::shared_ptr<void> templates_;  // the template selected with / without tools, parsed
  std::string fingerprint_;
  std::optional<chat::ToolCallFormat> tool_format_override_;
  mutable std::mutex constraint_mutex_;
  mutable std::shared_ptr<const constrained::TokenVocabulary> constraint_vocabulary_;
};

}  // namespace lmx::generate
