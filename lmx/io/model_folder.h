// A model folder in the Hugging Face / mlx-community layout: config.json (with a nested
// text_config for VLMs), optional generation_config.json, safetensors weights (one file or
// shards with model.safetensors.index.json), tokenizer files (read by lmx/tokenizer).
#pragma once

#include <filesystem>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include "lmx/io/weight_map.h"

namespace lmx::io {

class ModelFolder {
 public:
  // Reads the configs and maps the weights. lmx::IoError when the folder or config.json is
  // missing; lmx::FormatError naming the file (and tensor or field) for malformed configs,
  // shard indexes that name missing files, duplicate tensors, malformed safetensors.
  static ModelFolder open(const std::filesystem::path& dir);

  ModelFolder(ModelFolder&&) noexcept;
  ModelFolder& operator=(ModelFolder&&) noexcept;
  ~ModelFolder();

  const std::filesystem::path& path() const { return path_; }

  // config.json as written.
  const nlohmann::json& raw_config() const;
  // The config a text model reads: config.json with the keys of its "text_config" object
  // (if any) laid over the top-level keys, and the nested *_config objects of other
  // modalities dropped. Equal to raw_config() for plain LLM folders.
  const nlohmann::json& text_config() const;
  // text_config()["model_type"], or "" when absent.
  std::string model_type() const;
  // generation_config.json, or nullptr when the folder has none.
  const nlohmann::json* generation_config() const;

  // The weight files used, in load order (relative to path()).
  const std::vector<std::filesystem::path>& weight_files() const { return weight_files_; }
  const WeightMap& weights() const { return weights_; }
  WeightMap& weights() { return weights_; }

 private:
  ModelFolder();

  std::filesystem::path path_;
  std::unique_ptr<nlohmann::json> raw_config_;
  std::unique_ptr<nlohmann::json> text_config_;
  std::unique_ptr<nlohmann::json> generation_config_;
  std::vector<std::filesystem::path> weight_files_;
  WeightMap weights_;
};

// The safetensors files of a folder, as ModelFolder picks them: the files an index names
// when it exists (all of them must exist); else model.safetensors / model*.safetensors;
// else every *.safetensors except adapters and consolidated.* duplicates. Relative paths.
std::vector<std::filesystem::path> find_weight_files(const std::filesystem::path& dir);

}  // namespace lmx::io
