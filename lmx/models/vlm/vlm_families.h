// Builders of the vision-language families (one file each), used by the registry. Each
// takes config.json as it stands (`raw`: vision_config, token ids) and the text model's
// config (`text`: text_config merged over the top level, as io::ModelFolder makes it).
#pragma once

#include <memory>

#include "lmx/models/config_reader.h"
#include "lmx/models/language_model.h"

namespace lmx::models::vlm {

std::unique_ptr<LanguageModel> llava(const ConfigReader& raw, const ConfigReader& text);
std::unique_ptr<LanguageModel> qwen2_vl(const ConfigReader& raw, const ConfigReader& text);
std::unique_ptr<LanguageModel> qwen2_5_vl(const ConfigReader& raw, const ConfigReader& text);
std::unique_ptr<LanguageModel> gemma3(const ConfigReader& raw, const ConfigReader& text);
std::unique_ptr<LanguageModel> paligemma(const ConfigReader& raw, const ConfigReader& text);
std::unique_ptr<LanguageModel> idefics3(const ConfigReader& raw, const ConfigReader& text);
std::unique_ptr<LanguageModel> smolvlm(const ConfigReader& raw, const ConfigReader& text);
std::unique_ptr<LanguageModel> mistral3(const ConfigReader& raw, const ConfigReader& text);
std::unique_ptr<LanguageModel> qwen3_vl(const ConfigReader& raw, const ConfigReader& text);
std::unique_ptr<LanguageModel> qwen3_vl_moe(const ConfigReader& raw, const ConfigReader& text);

}  // namespace lmx::models::vlm
