#include "lmx/chat/chat_template.h"

#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "lmx/base/json_nesting.h"
#include "lmx/chat/json_value.h"
#include "lmx/chat/renderer.h"
#include "lmx/chat/template_error.h"

namespace lmx::chat {

namespace {

std::string read_file(const std::filesystem::path& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw IoError("cannot open " + path.string());
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// transformers: the text of the final message (or its last text part) must appear in
// the rendering; the prompt ends right after it.
std::string continue_final(std::string rendered, const Value& messages) {
  const auto& items = messages.items();
  if (items.empty() || !items.back().is_dict())
    throw InvalidArgument("continue_final_message: messages must end with a message");
  const Value* content = items.back().dict_ref().find("content");
  std::string final_text;
  bool found = false;
  if (content && content->is_string()) {
    final_text = content->str();
    found = true;
  } else if (content && content->is_list()) {
    for (auto it = content->items().rbegin(); it != content->items().rend(); ++it)
      if (it->is_dict())
        if (const Value* t = it->dict_ref().find("text")) {
          final_text = t->to_str();
          found = true;
          break;
        }
  }
  if (!found) throw InvalidArgument("continue_final_message: no text in the final message");
  std::string stripped = py_strip(final_text, nullptr, true, true);
  std::string lstripped = py_strip(final_text, nullptr, true, false);
  size_t loc = rendered.rfind(stripped);
  if (loc == std::string::npos)
    throw InvalidArgument("continue_final_message: the final message does not appear in the rendered chat");
  if (lstripped.size() == final_text.size() && rendered.compare(loc, final_text.size(), final_text) == 0) {
    rendered.resize(loc + lstripped.size());
  } else {
    rendered.resize(loc + stripped.size());
  }
  return rendered;
}

}  // namespace

ChatTemplate::ChatTemplate(std::string_view source) : template_(source) {}

std::string ChatTemplate::render(const nlohmann::ordered_json& messages,
                                 const nlohmann::ordered_json& tools,
                                 const nlohmann::ordered_json& extra,
                                 const SpecialTokens& special_tokens,
                                 const ChatRenderOptions& options) const {
  if (!messages.is_array()) throw InvalidArgument("chat template: messages must be a JSON list");
  if (!tools.is_null() && !tools.is_array()) throw InvalidArgument("chat template: tools must be a JSON list or null");
  if (!extra.is_null() && !extra.is_object())
    throw InvalidArgument("chat template: extra variables must be a JSON object or null");
  return render_values(value_from_json(messages), value_from_json(tools), value_from_json(extra), special_tokens,
                       options);
}

std::string ChatTemplate::render_values(const Value& messages,
                                        const Value& tools,
                                        const Value& extra,
                                        const SpecialTokens& special_tokens,
                                        const ChatRenderOptions& options) const {
  if (options.continue_final_message && options.add_generation_prompt)
    throw InvalidArgument("continue_final_message and add_generation_prompt are mutually exclusive");
  // transformers: render(messages=, tools=, documents=, add_generation_prompt=,
  // **special_tokens_map, **kwargs); later keys win.
  std::vector<std::pair<Value, Value>> ctx;
  auto put = [&](const std::string& key, Value v) {
    for (auto& kv : ctx)
      if (kv.first.str() == key) {
        kv.second = std::move(v);
        return;
      }
    ctx.emplace_back(Value::string(key), std::move(v));
  };
  put("messages", messages);
  put("tools", tools.is_undefined() ? Value::none() : tools);
  put("documents", Value::none());
  put("add_generation_prompt", Value::boolean(options.add_generation_prompt));
  for (const auto& [k, v] : special_tokens) put(k, Value::string(v));
  if (extra.is_dict())
    for (const auto& [k, v] : extra.dict_ref().items) put(k.to_str(), v);
  std::string out = template_.render(Value::dict(std::move(ctx)), options.render);
  if (options.continue_final_message) out = continue_final(std::move(out), messages);
  return out;
}

ChatTemplateSource select_chat_template(const nlohmann::ordered_json& config, bool has_tools, std::string_view origin) {
  auto it = config.find("chat_template");
  if (it == config.end() || it->is_null())
    throw FormatError(std::string(origin) + ": no chat_template");
  if (it->is_string()) return {it->get<std::string>(), std::string(origin) + ":chat_template"};
  if (!it->is_array()) throw FormatError(std::string(origin) + ": chat_template must be a string or a list");
  const nlohmann::ordered_json* chosen = nullptr;
  const nlohmann::ordered_json* fallback = nullptr;
  for (const auto& entry : *it) {
    if (!entry.is_object() || !entry.contains("name") || !entry.contains("template"))
      throw FormatError(std::string(origin) + ": chat_template list entries need name and template");
    std::string name = entry["name"].get<std::string>();
    if (name == "tool_use" && has_tools) chosen = &entry;
    if (name == "default") fallback = &entry;
  }
  if (!chosen) chosen = fallback;
  if (!chosen)
    throw FormatError(std::string(origin) + ": chat_template list has no 'default' entry" +
                      (has_tools ? " nor 'tool_use'" : ""));
  return {(*chosen)["template"].get<std::string>(),
          std::string(origin) + ":chat_template[" + (*chosen)["name"].get<std::string>() + "]"};
}

ChatTemplateSource select_chat_template(const std::filesystem::path& model_dir, bool has_tools) {
  auto jinja = model_dir / "chat_template.jinja";
  if (std::filesystem::exists(jinja)) return {read_file(jinja), jinja.string()};
  // Processor-style folders (VLMs) keep {"chat_template": "..."} in chat_template.json.
  auto json_file = model_dir / "chat_template.json";
  if (std::filesystem::exists(json_file)) {
    nlohmann::ordered_json j;
    const std::string text = read_file(json_file);
    check_json_nesting(text, json_file.string());
    try {
      j = nlohmann::ordered_json::parse(text);
    } catch (const nlohmann::json::exception& e) {
      throw FormatError(json_file.string() + ": " + e.what());
    }
    return select_chat_template(j, has_tools, json_file.string());
  }
  auto config_path = model_dir / "tokenizer_config.json";
  if (!std::filesystem::exists(config_path))
    throw IoError(model_dir.string() + ": no chat_template.jinja, chat_template.json or tokenizer_config.json");
  nlohmann::ordered_json config;
  const std::string text = read_file(config_path);
  check_json_nesting(text, config_path.string());
  try {
    config = nlohmann::ordered_json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw FormatError(config_path.string() + ": " + e.what());
  }
  return select_chat_template(config, has_tools, config_path.string());
}

SpecialTokens special_tokens_from_config(const nlohmann::ordered_json& config) {
  SpecialTokens out;
  for (const char* key :
       {"bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token"}) {
    auto it = config.find(key);
    if (it == config.end()) continue;
    if (it->is_string()) {
      out.emplace_back(key, it->get<std::string>());
    } else if (it->is_object() && it->contains("content") && (*it)["content"].is_string()) {
      out.emplace_back(key, (*it)["content"].get<std::string>());
    }
  }
  return out;
}

std::pair<std::string, nlohmann::ordered_json> parse_template_variable(std::string_view assignment) {
  size_t eq = assignment.find('=');
  if (eq == std::string_view::npos || eq == 0)
    throw InvalidArgument("template variable must be key=value, got '" + std::string(assignment) + "'");
  std::string key(assignment.substr(0, eq));
  std::string text(assignment.substr(eq + 1));
  nlohmann::ordered_json value = nlohmann::ordered_json::parse(text, nullptr, false);
  if (value.is_discarded()) value = text;
  return {key, value};
}

std::shared_ptr<const ChatTemplate> ChatTemplateCache::get(const std::string& source) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = cache_.find(source);
    if (it != cache_.end()) return it->second;
  }
  auto parsed = std::make_shared<const ChatTemplate>(source);  // parse outside the lock
  std::lock_guard<std::mutex> lock(mutex_);
  return cache_.emplace(source, std::move(parsed)).first->second;
}

size_t ChatTemplateCache::size() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return cache_.size();
}

}  // namespace lmx::chat
