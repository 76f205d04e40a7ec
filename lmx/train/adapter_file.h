// Adapter folders. mlx-lm's: adapter_config.json ({"fine_tune_type": "lora" | "dora" |
// "full", "num_layers": N, "lora_parameters": {"rank", "scale", "dropout", "keys"}, ...})
// and adapters.safetensors ("model.layers.N.self_attn.q_proj.lora_a" [in, rank],
// ".lora_b" [rank, out], DoRA ".m" [out]; full: the trained parameters by name), both
// replaced atomically so a crash leaves the old pair or the new one. PEFT's folders
// (adapter_config.json + adapter_model.safetensors) are read too (peft_adapter.h).
#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "lmx/train/lora.h"

namespace lmx::io {
struct TensorInfo;
}

namespace lmx::train {

// Writes adapters.safetensors (or `weights_name`, e.g. "0000100_adapters.safetensors")
// and adapter_config.json into `dir` (created if needed). `extra` keys (training
// arguments) join the config.
void save_adapters(const std::filesystem::path& dir, const LoraAdapters& adapters, const nlohmann::json& extra,
                   const std::string& weights_name = "adapters.safetensors");

// The LoraConfig of an mlx-lm adapter folder's adapter_config.json (FormatError naming the
// file; Unsupported for a fine-tune type lmx does not have).
LoraConfig read_adapter_config(const std::filesystem::path& dir);

// IoError "adapters: no folder <dir>" unless `dir` is a directory: the first check of
// load_adapters, also made before a model loads so that a mistyped path fails at once.
void check_adapter_folder(const std::filesystem::path& dir);

// Reads the adapters in `dir` for `model` (mlx-lm's files, or PEFT's when the folder holds
// adapter_model.safetensors instead): FormatError naming the file and listing every
// problem at once (an unknown layer, a missing lora_a / lora_b / m, a shape that does not
// fit the layer), Unsupported for a fine-tune type or PEFT option lmx does not have.
// `weights_name` picks another weights file of an mlx-lm folder (a checkpoint).
LoraAdapters load_adapters(const std::filesystem::path& dir, models::TransformerLM& model,
                           const std::string& weights_name = "adapters.safetensors");

// Sets every trainable tensor of `adapters` from a weights file written by save_adapters
// (`--resume-adapter-file`): FormatError naming the file and listing each tensor missing
// or of another shape (the file must come from the same fine-tune type, rank and layers).
void resume_adapters(const std::filesystem::path& file, LoraAdapters& adapters);

// load_adapters, then attaches them to the model (applied at inference without fusing:
// `lmx generate/chat --adapter-path`); a split model (TensorParallelLM) gets each rank's
// share (split_adapters.h). Unsupported for a model that is neither.
void attach_adapters(models::LanguageModel& model, const std::filesystem::path& dir);

// Shared by the readers: the adapter tensors of each layer (f32; m only for DoRA) become
// LoraAdapters after every check; FormatError "<file>: adapters do not fit this model:"
// with `problems` and the ones found here, one a line.
struct LayerTensors {
  Tensor a, b, m;  // [in, rank], [rank, out], [out]
};
LoraAdapters adapters_from_tensors(const std::string& file, const LoraConfig& config,
                                   const std::map<std::string, LayerTensors>& layers, std::vector<std::string> problems,
                                   models::TransformerLM& model);
// An f32 copy of a safetensors tensor (the file's bytes may be unaligned).
Tensor read_f32(const io::TensorInfo& info);
// The JSON object in `path`: IoError when unreadable, FormatError naming the file otherwise.
nlohmann::json read_json_file(const std::filesystem::path& path);

}  // namespace lmx::train
