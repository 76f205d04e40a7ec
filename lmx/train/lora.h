// LoRA adapters for training (mlx-lm's LoRALinear): on the chosen Linear layers of the last
// `num_layers` blocks, y = base(x) + scale * (dropout(x) @ lora_a) @ lora_b with lora_a
// [in, rank] ~ U(-1/sqrt(in), 1/sqrt(in)) and lora_b [rank, out] = 0, the base frozen
// (kept packed when it is quantized: QLoRA).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "lmx/core/autograd/variable.h"
#include "lmx/models/transformer.h"

namespace lmx::train {

struct LoraConfig {
  int64_t rank = 8;
  float scale = 20.0f;
  float dropout = 0.0f;
  // Blocks counted from the last one; -1: all of them.
  int64_t num_layers = 16;
  // Module paths inside a block ("self_attn.q_proj"); empty: every Linear of the block.
  std::vector<std::string> keys;
};

struct LoraPair {
  autograd::Var a;  // [in, rank]
  autograd::Var b;  // [rank, out]
};

// Adapters by the Linear's full path ("model.layers.3.self_attn.q_proj").
struct LoraAdapters {
  LoraConfig config;
  std::map<std::string, LoraPair> layers;

  // The trainable leaves, in path order (a, then b).
  std::vector<autograd::Var*> parameters();
  // Attaches the current values to the model's Linear layers (inference without fusing),
  // or detaches them.
  void attach(models::TransformerLM& model) const;
  static void detach(models::TransformerLM& model);
};

// New adapters for `model` (mlx-lm's initialization, drawn from `seed`). Throws
// InvalidArgument naming a key that matches no Linear of the blocks.
LoraAdapters make_lora(models::TransformerLM& model, const LoraConfig& config, uint64_t seed);

// The Linear layers of the model by full path.
std::map<std::string, nn::Linear*> linear_layers(models::TransformerLM& model);

}  // namespace lmx::train
