#include "lmx/generate/model_container.h"

#include <chrono>
#include <fstream>
#include <nlohmann/json.hpp>

#include "lmx/chat/chat_template.h"
#include "lmx/core/error.h"
#include "lmx/generate/generate.h"
#include "lmx/io/hub.h"

namespace lmx::generate {
namespace {

nlohmann::ordered_json read_tokenizer_config(const std::filesystem::path& dir) {
  std::ifstream in(dir / "tokenizer_config.json");
  if (!in) return nlohmann::ordered_json::object();
  try {
    return nlohmann::ordered_json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    throw FormatError((dir / "tokenizer_config.json").string() + ": " + e.what());
  }
}

}  // namespace

ModelContainer::ModelContainer(std::filesystem::path path, models::LoadedModel loaded, tokenizer::Tokenizer tok)
    : path_(std::move(path)),
      loaded_(std::move(loaded)),
      tokenizer_(std::move(tok)),
      template_cache_(std::make_shared<chat::ChatTemplateCache>()) {}

std::shared_ptr<ModelContainer> ModelContainer::load(const std::string& spec) {
  const auto start = std::chrono::steady_clock::now();
  std::filesystem::path dir = io::resolve_model(spec);
  models::LoadedModel loaded = models::load_model(dir);
  tokenizer::Tokenizer tok = tokenizer::Tokenizer::from_folder(dir);
  std::shared_ptr<ModelContainer> c(new ModelContainer(dir, std::move(loaded), std::move(tok)));
  c->load_seconds_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return c;
}

bool ModelContainer::has_chat_template() const {
  try {
    chat::select_chat_template(path_, false);
    return true;
  } catch (const Error&) {
    return false;
  }
}

std::string ModelContainer::render_prompt(const UserInput& input) const {
  nlohmann::ordered_json messages = nlohmann::ordered_json::array();
  if (!input.system_prompt.empty()) messages.push_back({{"role", "system"}, {"content", input.system_prompt}});
  if (input.messages) {
    for (const auto& m : *input.messages) messages.push_back(m);
  } else {
    messages.push_back({{"role", "user"}, {"content", input.prompt}});
  }
  const bool has_tools = input.tools && !input.tools->is_null() && !input.tools->empty();
  chat::ChatTemplateSource src = chat::select_chat_template(path_, has_tools);
  auto tmpl = static_cast<chat::ChatTemplateCache*>(template_cache_.get())->get(src.text);
  chat::SpecialTokens specials = chat::special_tokens_from_config(read_tokenizer_config(path_));
  chat::ChatRenderOptions opts;
  opts.add_generation_prompt = input.add_generation_prompt;
  nlohmann::ordered_json none;
  return tmpl->render(messages, has_tools ? *input.tools : none,
                     input.extra_context ? *input.extra_context : none, specials, opts);
}

std::vector<int32_t> ModelContainer::prepare(const UserInput& input) const {
  if (input.ignore_chat_template || !has_chat_template()) {
    std::string text = input.system_prompt.empty() ? input.prompt : input.system_prompt + "\n\n" + input.prompt;
    return tokenizer_.encode(text, true);
  }
  // The template writes the special tokens itself (as transformers' apply_chat_template).
  return tokenizer_.encode(render_prompt(input), false);
}

std::set<int32_t> ModelContainer::eos_ids(const std::vector<std::string>& extra) const {
  return collect_eos_ids(loaded_.folder, tokenizer_, extra);
}

}  // namespace lmx::generate
