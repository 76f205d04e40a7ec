// gemma3n_text: the language model of Gemma 3n (lmx/models/llm/gemma3n.cpp).
#pragma once

#include <memory>

#include "lmx/models/config_reader.h"
#include "lmx/models/language_model.h"

namespace lmx::models::llm {

std::unique_ptr<LanguageModel> gemma3n_text(const ConfigReader& c);

}  // namespace lmx::models::llm
