// Writing a model folder in the mlx-community layout: the source config (plus a
// "quantization" entry when quantized), weights under their checkpoint names in
// safetensors shards of at most `shard_bytes` with an index, tokenizer files copied.
#pragma once

#include <filesystem>
#include <map>
#include <optional>

#include "lmx/models/language_model.h"
#include "lmx/models/quantize.h"

namespace lmx::models {

struct SaveOptions {
  std::optional<QuantizeOptions> quantization;  // recorded in config.json
  // Per-layer entries of config.json's "quantization" (a recipe's choices).
  std::map<std::string, LayerQuantization> quantization_per_layer;
  std::optional<Dtype> dtype;                   // float weights cast to this (norms too)
  size_t shard_bytes = size_t{5} << 30;          // 5 GB, as the Python tools
  bool drop_quantization = false;               // remove the source's entry (a dequantized model)
};

// `model`: an LLM or any module tree (an embedder's encoder) whose parameter names are
// the checkpoint's.
void save_model(nn::Module& model, const std::filesystem::path& source_dir, const std::filesystem::path& out_dir,
                const SaveOptions& options);

// The model folder `source_dir` loaded (unprepared), quantized with `q` as a whole and
// written to `out_dir` with its quantization recorded: the 4-bit copies tests train and
// split.
void save_quantized_copy(const std::filesystem::path& source_dir, const std::filesystem::path& out_dir,
                         const QuantizeOptions& q);

}  // namespace lmx::models
