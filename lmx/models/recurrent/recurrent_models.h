// Model types whose layers are (all or partly) recurrent: each is its own short module
// tree over the shared blocks of lmx/nn/ssm, and says which layers keep a state cache
// (LanguageModel::make_layer_cache).
#pragma once

#include <memory>

#include "lmx/models/config_reader.h"
#include "lmx/models/language_model.h"

namespace lmx::models::recurrent {

std::unique_ptr<LanguageModel> mamba(const ConfigReader& c);
std::unique_ptr<LanguageModel> mamba2(const ConfigReader& c);
std::unique_ptr<LanguageModel> nemotron_h(const ConfigReader& c);
std::unique_ptr<LanguageModel> lfm2(const ConfigReader& c);
std::unique_ptr<LanguageModel> qwen3_next(const ConfigReader& c);
std::unique_ptr<LanguageModel> qwen3_5(const ConfigReader& c);  // qwen3_5_text, qwen3_5_moe_text
std::unique_ptr<LanguageModel> jamba(const ConfigReader& c);
std::unique_ptr<LanguageModel> granitemoehybrid(const ConfigReader& c);
std::unique_ptr<LanguageModel> falcon_h1(const ConfigReader& c);
std::unique_ptr<LanguageModel> lfm2_moe(const ConfigReader& c);
std::unique_ptr<LanguageModel> recurrent_gemma(const ConfigReader& c);

}  // namespace lmx::models::recurrent
