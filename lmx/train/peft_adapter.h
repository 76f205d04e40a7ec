// PEFT's LoRA / DoRA adapter folders (Hugging Face peft's save_pretrained):
// adapter_config.json ({"peft_type": "LORA", "r", "lora_alpha", "use_rslora", "use_dora",
// "target_modules", ...}) and adapter_model.safetensors with
// "base_model.model.<layer>.lora_A.weight" [rank, in], ".lora_B.weight" [out, rank] and
// DoRA's ".lora_magnitude_vector" [out]. The scale is lora_alpha / r (rsLoRA: / sqrt(r)).
#pragma once

#include <filesystem>
#include <string>

#include "lmx/train/lora.h"

namespace lmx::train {

// True when `dir` holds adapter_model.safetensors (and no mlx-lm adapters.safetensors).
bool is_peft_adapter(const std::filesystem::path& dir);

// Reads a PEFT folder as LoRA or DoRA adapters for `model`: FormatError naming the file
// and listing every tensor that does not fit, Unsupported naming the config field of an
// option lmx does not implement (another peft_type, fan_in_fan_out, per-module ranks or
// alphas, trained biases or lora_bias, modules_to_save, use_qalora, layer_replication,
// trainable_token_indices).
LoraAdapters load_peft_adapters(const std::filesystem::path& dir, models::TransformerLM& model);

// Writes LoRA / DoRA adapters as a PEFT folder (lora_alpha = scale * rank), each file
// replaced atomically. Unsupported for full fine-tuning.
void save_peft_adapters(const std::filesystem::path& dir, const LoraAdapters& adapters,
                        const std::string& base_model_name);

}  // namespace lmx::train
