// What a sentence-transformers folder adds around the HF model: modules.json (Transformer,
// Pooling, Dense..., Normalize in that order), 1_Pooling/config.json,
// sentence_bert_config.json (max_seq_length), config_sentence_transformers.json (prompts).
// A plain HF folder (no modules.json) reads as a Transformer alone.
#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "lmx/models/embed/pooling.h"
#include "lmx/nn/linear.h"

namespace lmx::models::embed {

enum class DenseActivation { identity, tanh };

struct DenseConfig {
  std::filesystem::path dir;  // the module's folder (config.json + model.safetensors)
  int64_t in = 0;
  int64_t out = 0;
  bool bias = true;
  DenseActivation act = DenseActivation::tanh;  // sentence-transformers' default
};

// sentence_transformers.models.Dense: act(linear(x)), weights "linear.weight" / "linear.bias".
class DenseLayer : public nn::Module {
 public:
  explicit DenseLayer(const DenseConfig& c);
  // x [rows, in] -> [rows, out]
  Tensor forward(const Tensor& x) const;
  const DenseConfig& config() const { return c_; }

 private:
  DenseConfig c_;
  std::unique_ptr<nn::Linear> linear_;
};

struct SentenceTransformerModules {
  bool has_modules_json = false;
  std::filesystem::path transformer_dir;  // where config.json + weights are
  std::vector<PoolingMode> pooling;       // empty: the folder names none
  bool include_prompt = true;
  int64_t pooling_dimension = 0;          // word_embedding_dimension (0: not given)
  std::vector<DenseConfig> dense;
  // The other modules' folders that exist (Pooling, Dense, Normalize), relative to the
  // folder, in modules.json's order.
  std::vector<std::filesystem::path> module_dirs;
  bool normalize = false;
  std::map<std::string, std::string> prompts;
  std::string default_prompt_name;
  std::optional<int64_t> max_seq_length;
};

// Reads the module files of `dir`. FormatError naming the file and field for malformed
// JSON, a module pointing at a missing folder, or a module out of the supported order;
// Unsupported naming the module type for kinds lmx does not run.
SentenceTransformerModules read_sentence_transformer_modules(const std::filesystem::path& dir);

// Loads a Dense module's weights (strict: a missing tensor or a wrong shape names the file).
std::unique_ptr<DenseLayer> load_dense_layer(const DenseConfig& c);

}  // namespace lmx::models::embed
