// mlx-lm's adapter files in a folder: adapter_config.json ({"fine_tune_type": "lora",
// "num_layers": N, "lora_parameters": {"rank", "scale", "dropout", "keys"}, ...}) and
// adapters.safetensors ("model.layers.N.self_attn.q_proj.lora_a" [in, rank], ".lora_b"
// [rank, out]), both replaced atomically so a crash leaves the old pair or the new one.
#pragma once

#include <filesystem>
#include <string>

#include <nlohmann/json_fwd.hpp>

#include "lmx/train/lora.h"

namespace lmx::train {

// Writes adapters.safetensors (or `weights_name`, e.g. "0000100_adapters.safetensors")
// and adapter_config.json into `dir` (created if needed). `extra` keys (training
// arguments) join the config.
void save_adapters(const std::filesystem::path& dir, const LoraAdapters& adapters, const nlohmann::json& extra,
                   const std::string& weights_name = "adapters.safetensors");

// Reads the adapters in `dir` for `model`: FormatError naming the file and listing every
// problem at once (an unknown layer, a missing lora_a / lora_b, a shape that does not fit
// the layer), Unsupported for a fine_tune_type other than lora.
LoraAdapters load_adapters(const std::filesystem::path& dir, models::TransformerLM& model);

// load_adapters, then attaches them to the model's Linear layers (applied at inference
// without fusing: `lmx generate/chat --adapter-path`). Unsupported for a model that is not
// a TransformerLM.
void attach_adapters(models::LanguageModel& model, const std::filesystem::path& dir);

}  // namespace lmx::train
