// Random-weight embedder folders written into a temporary directory, for tests that need
// no Hugging Face reference (batching invariants, bad inputs, the CLI).
#pragma once

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "lmx/models/embed/embedder.h"

namespace lmx::test {

// A unique empty directory under the system temp dir, removed by the destructor.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// A tiny BERT config (vocab 64, hidden 16, 2 layers, 4 heads) with the given overrides.
nlohmann::json tiny_bert_config(const nlohmann::json& overrides = nlohmann::json::object());

// Writes config.json and model.safetensors (f32, N(0, 0.1) values; LayerNorm weights near 1)
// with every parameter the config's encoder has; `with_pooler` adds BERT's pooler.
void write_random_encoder(const std::filesystem::path& dir, const nlohmann::json& config, unsigned seed,
                          bool with_pooler = false);

// modules.json + 1_Pooling/config.json (`pooling`: key suffixes after "pooling_mode_", e.g.
// "mean_tokens", "cls_token", "lasttoken") + a Dense per `dense` entry {in, out, bias,
// activation} + a Normalize module when `normalize`; Dense weights random.
void write_st_modules(const std::filesystem::path& dir, int64_t hidden, const std::vector<std::string>& pooling,
                      const std::vector<nlohmann::json>& dense, bool normalize, unsigned seed);

void write_json(const std::filesystem::path& file, const nlohmann::json& j);

// Fills a safetensors file with random f32 tensors of these names and shapes.
void write_random_tensors(const std::filesystem::path& file,
                          const std::vector<std::pair<std::string, std::vector<int64_t>>>& tensors, unsigned seed);

// Options for an embedder driven by token ids (no tokenizer), optionally with a pooling.
models::embed::EmbedderOptions ids_only(std::vector<models::embed::PoolingMode> pooling = {});

}  // namespace lmx::test
