// model_type -> architecture builder, in one table (no static self-registration).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "lmx/models/config_reader.h"
#include "lmx/models/language_model.h"

namespace lmx::models {

// Builds the (unloaded) model a config describes; Unsupported for unknown model_type.
std::unique_ptr<LanguageModel> create_model(const ConfigReader& config);
// Builds the model of a folder: a vision-language model when config.json's model_type
// (`raw`) is one, else the text model of `text` (text_config merged over the top level,
// as io::ModelFolder::text_config makes it).
std::unique_ptr<LanguageModel> create_folder_model(const ConfigReader& raw, const ConfigReader& text);
// Every model_type (and alias) lmx can build.
std::vector<std::string> supported_model_types();

}  // namespace lmx::models
