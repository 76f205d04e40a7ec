// Importer for Karpathy's llama2.c checkpoints (model .bin + tokenizer .bin) into a normal
// Hugging Face llama folder that the rest of lmx (and transformers) loads as is.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace lmx::io {

// The 7 int32 header of a llama2.c model file.
struct Llama2cConfig {
  int32_t dim = 0;
  int32_t hidden_dim = 0;
  int32_t n_layers = 0;
  int32_t n_heads = 0;
  int32_t n_kv_heads = 0;
  int32_t vocab_size = 0;  // absolute value; the sign in the file is shared_classifier
  int32_t seq_len = 0;
  bool shared_classifier = true;  // lm_head is the embedding (positive vocab_size in the file)
};

// Reads and validates the header. lmx::FormatError naming the file and field for values
// that cannot describe a model, or a file size that does not match them.
Llama2cConfig read_llama2c_config(const std::filesystem::path& model_bin);

// One entry of a llama2.c tokenizer file.
struct Llama2cToken {
  std::string piece;  // as stored: spaces, "\n<s>\n" for BOS, "<0x0A>" for bytes
  float score = 0;
};
// Reads `vocab_size` entries (the file does not store the count). lmx::FormatError when the
// file has fewer or more.
std::vector<Llama2cToken> read_llama2c_tokenizer(const std::filesystem::path& tokenizer_bin,
                                                 int32_t vocab_size);

// Writes out_dir/{config.json, generation_config.json, model.safetensors (f32, HF llama
// names), tokenizer.json, tokenizer_config.json, special_tokens_map.json}. q/k projection
// rows are permuted from llama2.c's interleaved-pair RoPE layout to HF's rotate_half layout
// (see docs/io.md), so the folder is a true HF llama folder. Creates out_dir if needed.
void import_llama2c(const std::filesystem::path& model_bin,
                    const std::filesystem::path& tokenizer_bin,
                    const std::filesystem::path& out_dir);

// The row permutation applied to wq / wk: HF row r of head h takes llama2.c row
// perm[r] of the same head, where for r = half * head_dim/2 + p, perm[r] = 2p + half.
// Exposed for tests.
std::vector<int64_t> llama2c_rope_row_permutation(int64_t head_dim);

}  // namespace lmx::io
