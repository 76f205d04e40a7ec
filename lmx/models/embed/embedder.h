// Embedder: a sentence-transformers folder (or a plain HF encoder folder) that turns texts
// or token-id lists into one vector each. Batching is done for the caller: inputs sorted
// by length, padded, masked, run in micro-batches under a token budget, and returned in
// input order; inputs longer than the model's limit are cut (and counted).
//
//   auto e = lmx::models::embed::Embedder::load("all-MiniLM-L6-v2");
//   std::vector<std::string> texts = {"first", "second"};
//   lmx::Tensor v = e.embed(texts).values;  // f32 [2, 384], unit rows
#pragma once

#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "lmx/core/tensor.h"
#include "lmx/models/embed/pooling.h"

namespace lmx::tokenizer {
class Tokenizer;
}

namespace lmx::models::embed {

struct TokenBatch;
struct SentenceTransformerModules;

struct EmbedderOptions {
  Device device = Device::cpu();
  // Overrides the folder's Pooling module; for a folder without one the default is mean.
  std::vector<PoolingMode> pooling;
  // false: token ids only (no tokenizer files needed).
  bool load_tokenizer = true;
  // Where the tokenizer files are (empty: the model folder).
  std::filesystem::path tokenizer_dir;
};

struct EmbedOptions {
  // A prompt of config_sentence_transformers.json put before each text ("" = the folder's
  // default_prompt_name, if any). Texts only.
  std::string prompt_name;
  // Default: the folder's Normalize module; a folder without modules.json normalizes.
  std::optional<bool> normalize;
  // Matryoshka: keep the first N values of each embedding (re-normalized when normalizing).
  int64_t dimensions = 0;
  // Padded tokens per forward pass (a longer input still runs, alone). 4096 runs as fast as
  // 8192 on the CPU (bge-base shape, 2 threads) with 0.64x the peak memory.
  int64_t max_batch_tokens = 4096;
  // Called after each micro-batch with (inputs done, inputs in all).
  std::function<void(size_t, size_t)> progress;
};

struct Embeddings {
  Tensor values;         // f32 [inputs, dim], in input order
  size_t truncated = 0;  // inputs cut at max_length()
};

class Embedder {
 public:
  // IoError / FormatError naming the file for a missing or malformed folder, module, Dense
  // layer or weight; Unsupported for architectures or module kinds lmx does not run.
  static Embedder load(const std::filesystem::path& dir, const EmbedderOptions& options = {});
  Embedder(Embedder&&) noexcept;
  Embedder& operator=(Embedder&&) noexcept;
  ~Embedder();

  // InvalidArgument for an unknown prompt name or an input that encodes to no tokens; an
  // empty string is an input like any other (a BERT tokenizer gives [CLS] [SEP]).
  Embeddings embed(std::span<const std::string> texts, const EmbedOptions& options = {}) const;
  // Each list is one input (token type 0), used as given (no special tokens added).
  Embeddings embed_tokens(std::span<const std::vector<int32_t>> inputs, const EmbedOptions& options = {}) const;

  // The encoder's last hidden state f32 [batch, seq, hidden] for one padded batch.
  Tensor last_hidden_state(const TokenBatch& batch) const;
  // Pooling + Dense (no normalization) of a hidden state: f32 [batch, dimension()].
  Tensor pool_and_project(const Tensor& hidden, const std::vector<int64_t>& lengths) const;

  int64_t dimension() const;   // values per embedding (before EmbedOptions::dimensions)
  int64_t max_length() const;  // tokens per input, special tokens included
  bool normalizes() const;     // the folder's default
  const std::vector<PoolingMode>& pooling() const;
  const std::string& model_type() const;
  const SentenceTransformerModules& modules() const;
  bool has_tokenizer() const;
  const tokenizer::Tokenizer& tokenizer() const;  // InvalidArgument when there is none

 private:
  struct Impl;
  explicit Embedder(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace lmx::models::embed
