// The language model inside a vision-language checkpoint, for the types whose text part
// lmx runs on its own (mistral3 and llama4 as mlx-lm does, gemma3n, gemma4, qwen3_5, qwen3_5_moe) when the model is loaded as a text model
// (a folder without the vision weights, or create_model on its text config; a whole
// folder loads as the vision-language model): the checkpoint's names for that part
// become the text model's and the vision tower and projector are dropped. Names come in
// the hub's layout (language_model.model.*, language_model.lm_head.*, vision_tower.*;
// mlx-lm keeps it) or transformers 5's (model.language_model.*, lm_head.*,
// model.vision_tower.*).
#pragma once

#include <nlohmann/json_fwd.hpp>

#include "lmx/models/language_model.h"

namespace lmx::models {

// Rewrites `weights` when config.json's top-level model_type is such a type; leaves them
// alone otherwise.
void keep_text_part(const nlohmann::json& config, WeightDict& weights);
// Whether the folder is such a type's text part alone (mlx-lm's conversions drop the
// vision weights): then it loads as its text model, not as the vision-language model.
bool is_text_part_only(const nlohmann::json& config, const WeightDict& weights);

}  // namespace lmx::models
