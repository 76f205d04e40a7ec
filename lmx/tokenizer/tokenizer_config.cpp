// tokenizer_config.json / special_tokens_map.json -> TokenizerConfig.
#include <nlohmann/json.hpp>

#include "lmx/base/error.h"
#include "lmx/tokenizer/tokenizer_impl.h"

namespace lmx::tokenizer::detail {

using Json = nlohmann::json;

namespace {

Json parse(std::string_view text, const std::string& source) {
  try {
    Json j = Json::parse(text.begin(), text.end());
    if (!j.is_object()) throw FormatError(source + ": expected a JSON object");
    return j;
  } catch (const Json::exception& e) {  // parse_error, and out_of_range for a number that overflows
    throw FormatError(source + ": malformed JSON: " + e.what());
  }
}

// A special token is a string or an object with "content" (AddedToken form).
std::optional<std::string> special_token(const Json& j,
                                         const char* key,
                                         const std::string& source) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return std::nullopt;
  if (it->is_string()) return it->get<std::string>();
  if (it->is_object()) {
    auto c = it->find("content");
    if (c != it->end() && c->is_string()) return c->get<std::string>();
  }
  throw FormatError(source + ": " + key + ": expected a string or an object with \"content\"");
}

void read_specials(TokenizerConfig& config,
                   const Json& j,
                   const std::string& source,
                   bool overwrite) {
  auto set = [&](std::optional<std::string>& dst, const char* key) {
    auto v = special_token(j, key, source);
    if (v && (overwrite || !dst)) dst = v;
  };
  set(config.bos_token, "bos_token");
  set(config.eos_token, "eos_token");
  set(config.unk_token, "unk_token");
  set(config.pad_token, "pad_token");
  set(config.sep_token, "sep_token");
  set(config.cls_token, "cls_token");
  set(config.mask_token, "mask_token");
  auto it = j.find("additional_special_tokens");
  if (it != j.end() && it->is_array() && (overwrite || config.additional_special_tokens.empty())) {
    config.additional_special_tokens.clear();
    for (const auto& e : *it) {
      if (e.is_string()) {
        config.additional_special_tokens.push_back(e.get<std::string>());
      } else if (e.is_object() && e.contains("content") && e["content"].is_string()) {
        config.additional_special_tokens.push_back(e["content"].get<std::string>());
      } else {
        throw FormatError(source + ": additional_special_tokens: expected strings or objects");
      }
    }
  }
}

}  // namespace

TokenizerConfig parse_tokenizer_config(std::string_view text, const std::string& source) {
  Json j = parse(text, source);
  TokenizerConfig c;
  read_specials(c, j, source, true);
  auto boolean = [&](const char* key) -> std::optional<bool> {
    auto it = j.find(key);
    if (it == j.end() || it->is_null()) return std::nullopt;
    if (!it->is_boolean()) throw FormatError(source + ": " + key + ": expected true or false");
    return it->get<bool>();
  };
  c.add_bos_token = boolean("add_bos_token");
  c.add_eos_token = boolean("add_eos_token");
  c.clean_up_tokenization_spaces = boolean("clean_up_tokenization_spaces").value_or(false);
  if (auto it = j.find("chat_template"); it != j.end() && !it->is_null()) {
    if (it->is_string()) {
      c.chat_template = it->get<std::string>();
    } else if (it->is_array()) {
      // [{"name": "default", "template": "..."}, {"name": "tool_use", ...}]
      for (size_t k = 0; k < it->size(); ++k) {
        const Json& e = (*it)[k];
        if (!e.is_object() || !e.contains("name") || !e.contains("template") ||
            !e["name"].is_string() || !e["template"].is_string()) {
          throw FormatError(source + ": chat_template[" + std::to_string(k) +
                            "]: expected {\"name\": ..., \"template\": ...}");
        }
        c.named_chat_templates.emplace_back(e["name"].get<std::string>(),
                                            e["template"].get<std::string>());
        if (e["name"] == "default") c.chat_template = e["template"].get<std::string>();
      }
    } else {
      throw FormatError(source + ": chat_template: expected a string or a list of named templates");
    }
  }
  if (auto it = j.find("model_max_length"); it != j.end() && it->is_number()) {
    double v = it->get<double>();
    // transformers writes 1e30 for "no limit".
    if (v > 0 && v < 1e18) c.model_max_length = static_cast<size_t>(v);
  }
  if (auto it = j.find("tokenizer_class"); it != j.end() && it->is_string()) {
    c.tokenizer_class = it->get<std::string>();
  }
  if (auto it = j.find("padding_side"); it != j.end() && it->is_string()) {
    c.padding_side = it->get<std::string>();
  }
  if (auto it = j.find("truncation_side"); it != j.end() && it->is_string()) {
    c.truncation_side = it->get<std::string>();
  }
  return c;
}

std::string parse_chat_template_json(std::string_view text, const std::string& source) {
  Json j = parse(text, source);
  auto it = j.find("chat_template");
  if (it == j.end() || !it->is_string()) {
    throw FormatError(source + ": chat_template: expected a string");
  }
  return it->get<std::string>();
}

void merge_special_tokens_map(TokenizerConfig& config,
                              std::string_view text,
                              const std::string& source) {
  read_specials(config, parse(text, source), source, false);
}

}  // namespace lmx::tokenizer::detail
