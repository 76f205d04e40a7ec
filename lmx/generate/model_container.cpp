#include "lmx/generate/model_container.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>

#include "lmx/chat/chat_template.h"
#include "lmx/chat/tool.h"
#include "lmx/base/error.h"
#include "lmx/base/json_nesting.h"
#include "lmx/generate/generate.h"
#include "lmx/io/hub.h"

namespace lmx::generate {
namespace {

nlohmann::ordered_json read_tokenizer_config(const std::filesystem::path& dir) {
  const auto path = dir / "tokenizer_config.json";
  std::ifstream in(path, std::ios::binary);
  if (!in) return nlohmann::ordered_json::object();
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  check_json_nesting(text, path.string());
  try {
    return nlohmann::ordered_json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw FormatError((dir / "tokenizer_config.json").string() + ": " + e.what());
  }
}

// The folder's chat template for prompts without and with tools (null when it has none).
struct Templates {
  std::shared_ptr<const chat::ChatTemplate> plain, with_tools;
  std::string tools_source;  // the text of with_tools (tool-call format inference)
};

std::shared_ptr<const chat::ChatTemplate> pick(const std::filesystem::path& dir, bool tools, std::string* text) {
  chat::ChatTemplateSource src;
  try {
    src = chat::select_chat_template(dir, tools);
  } catch (const Error&) {
    return nullptr;  // no template: prompts are plain text
  }
  if (text) *text = src.text;
  return std::make_shared<const chat::ChatTemplate>(src.text);
}

uint64_t fnv1a(std::string_view bytes, uint64_t h = 1469598103934665603ull) {
  for (unsigned char ch : bytes) h = (h ^ ch) * 1099511628211ull;
  return h;
}

std::string hex(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

// The first bytes of a safetensors file: the 8-byte length and the JSON header, which
// names every tensor with its dtype, shape and byte offsets (at most 100 MB read).
std::string safetensors_header(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  std::string head(8, '\0');
  if (!in.read(head.data(), 8)) return head;
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<unsigned char>(head[static_cast<size_t>(i)]);
  std::string json(static_cast<size_t>(std::min<uint64_t>(n, 100u << 20)), '\0');
  in.read(json.data(), static_cast<std::streamsize>(json.size()));
  return head + json;
}

// Identifies the weights, not the path they were loaded from: model_type, layers, a hash
// of config.json, then per weight file its name, size and a hash of its header.
std::string weights_fingerprint(const std::filesystem::path& dir, const io::ModelFolder& folder,
                                const models::LanguageModel& model) {
  std::ifstream in(dir / "config.json", std::ios::binary);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  // Appended piece by piece: g++ 12 warns (-Wrestrict) on "literal" + std::string here.
  std::string fp = model.model_type();
  fp += ':';
  fp += std::to_string(model.num_layers());
  fp += ":config=";
  fp += hex(fnv1a(text));
  for (const auto& rel : folder.weight_files()) {  // relative to the folder
    const std::filesystem::path file = dir / rel;
    std::error_code ec;
    const auto size = std::filesystem::file_size(file, ec);
    fp += ';';
    fp += rel.string();
    fp += '=';
    fp += std::to_string(ec ? 0 : size);
    fp += ':';
    fp += hex(fnv1a(safetensors_header(file)));
  }
  return fp;
}

}  // namespace

ModelContainer::ModelContainer(std::filesystem::path path, models::LoadedModel loaded, tokenizer::Tokenizer tok)
    : path_(std::move(path)), loaded_(std::move(loaded)), tokenizer_(std::move(tok)) {
  tokenizer_config_ = std::make_shared<const nlohmann::ordered_json>(read_tokenizer_config(path_));
  auto t = std::make_shared<Templates>();
  t->plain = pick(path_, false, nullptr);
  t->with_tools = pick(path_, true, &t->tools_source);
  templates_ = t;
  fingerprint_ = weights_fingerprint(path_, loaded_.folder, *loaded_.model);
}

std::shared_ptr<ModelContainer> ModelContainer::load(const std::string& spec, const LoadProgress& progress) {
  return load(spec, models::LoadOptions{}, progress);
}

std::shared_ptr<ModelContainer> ModelContainer::load(const std::string& spec, const models::LoadOptions& options,
                                                     const LoadProgress& progress) {
  const auto start = std::chrono::steady_clock::now();
  auto report = [&](std::string_view stage, double fraction) {
    if (progress) progress(stage, fraction);
  };
  report("resolve", 0.0);
  std::filesystem::path dir = io::resolve_model(spec);
  report("weights", 0.1);
  models::LoadedModel loaded = models::load_model(dir, options);
  report("tokenizer", 0.9);
  tokenizer::Tokenizer tok = tokenizer::Tokenizer::from_folder(dir);
  std::shared_ptr<ModelContainer> c(new ModelContainer(dir, std::move(loaded), std::move(tok)));
  c->load_seconds_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  report("ready", 1.0);
  return c;
}

GenerationInfo ModelContainer::generate(const UserInput& input, const GenerateParameters& params,
                                        const std::function<bool(const GenerationEvent&)>& on_event) {
  const std::vector<int32_t> prompt = prepare(input);
  GenerateOptions opts;
  opts.eos_ids = eos_ids();
  if (input.tools && !input.tools->is_null() && !input.tools->empty() && !input.ignore_chat_template) {
    opts.tool_call_format = tool_call_format();
    for (const auto& t : *input.tools) opts.tool_calls.tools.push_back(chat::ToolSpec::from_json(t));
  }
  GenerationInfo info;
  perform([&](models::LanguageModel& model, const tokenizer::Tokenizer& tok) {
    Generation gen(model, tok, prompt, params, opts);
    info.stop_reason = gen.run([&](const GenerationEvent& e) {
      if (e.kind == GenerationEvent::Kind::info) info = e.info;
      return on_event(e);
    });
  });
  return info;
}

bool ModelContainer::has_chat_template() const {
  return static_cast<const Templates*>(templates_.get())->plain != nullptr;
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
  const auto* templates = static_cast<const Templates*>(templates_.get());
  const auto& tmpl = has_tools ? templates->with_tools : templates->plain;
  if (!tmpl) throw InvalidArgument(path_.string() + ": the model folder has no chat template");
  chat::SpecialTokens specials = chat::special_tokens_from_config(*tokenizer_config_);
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

chat::ToolCallFormat ModelContainer::tool_call_format() const {
  return chat::infer_tool_call_format(tool_format_override_, *tokenizer_config_,
                                      static_cast<const Templates*>(templates_.get())->tools_source,
                                      loaded_.model->model_type());
}

std::shared_ptr<const constrained::TokenVocabulary> ModelContainer::constraint_vocabulary() const {
  std::lock_guard<std::mutex> lock(constraint_mutex_);
  if (!constraint_vocabulary_) constraint_vocabulary_ = generate::constraint_vocabulary(tokenizer_, eos_ids());
  return constraint_vocabulary_;
}

std::set<int32_t> ModelContainer::eos_ids(const std::vector<std::string>& extra) const {
  return collect_eos_ids(loaded_.folder, tokenizer_, extra);
}

}  // namespace lmx::generate
