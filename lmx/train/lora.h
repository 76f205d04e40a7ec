// What fine-tuning trains (mlx-lm's tuner), on the last `num_layers` blocks:
// - lora (LoRALinear): on the chosen Linear layers, y = base(x) + scale * (dropout(x) @
//   lora_a) @ lora_b with lora_a [in, rank] ~ U(-1/sqrt(in), 1/sqrt(in)) and lora_b
//   [rank, out] = 0, the base frozen (kept packed when it is quantized: QLoRA);
// - dora (DoRALinear): the same pair plus a magnitude m [out], initialized to the row
//   norms of W; y = m / ||W + scale * (a b)^T||_row * (W x + scale * (x a) b) + bias, the
//   norm treated as a constant in the backward (as mlx-lm and PEFT do);
// - full: every parameter of those blocks (Linear weights and biases, norms), as f32
//   copies; the model keeps its own until attach() writes them back.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "lmx/core/autograd/variable.h"
#include "lmx/models/transformer.h"

namespace lmx::train {

enum class FineTuneType { lora, dora, full };
// "lora", "dora", "full"; InvalidArgument naming the value otherwise.
FineTuneType parse_fine_tune_type(const std::string& name);
const char* fine_tune_type_name(FineTuneType type);

struct LoraConfig {
  FineTuneType type = FineTuneType::lora;
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
  autograd::Var m;  // [out], DoRA only (undefined for LoRA)
};

// The trained state: LoRA / DoRA adapters by the Linear's full path
// ("model.layers.3.self_attn.q_proj"), or (full) f32 parameters by name
// ("model.layers.3.self_attn.q_proj.weight").
struct LoraAdapters {
  LoraConfig config;
  std::map<std::string, LoraPair> layers;
  std::map<std::string, autograd::Var> weights;

  // The trainable leaves, in name order (a, b, m of each layer; or the weights).
  std::vector<autograd::Var*> parameters();
  // The same with their names as saved ("<layer>.lora_a" / ".lora_b" / ".m", or the
  // parameter names).
  std::vector<std::pair<std::string, autograd::Var*>> named_parameters();
  std::vector<std::pair<std::string, const autograd::Var*>> named_parameters() const;
  // Adapters of the same layers (or weights) and config, each tensor's value `value(name)`
  // (by the saved names), trainable leaves or constants.
  LoraAdapters with_values(const std::function<Tensor(const std::string& name)>& value, bool trainable) const;
  // LoRA / DoRA: attaches the current values to the model's Linear layers (inference
  // without fusing; DoRA's norm is computed here, once). Full: copies the weights into
  // the model's parameters (in their dtypes). `sum_squares(layer, squares)`, when given,
  // turns a layer's squared DoRA row norms over the inputs it holds into those over every
  // input (a split model's row-parallel layer: the ranks' sum, lmx/train/split_adapters.h).
  using SumSquares = std::function<Tensor(const std::string& layer, const Tensor& squares)>;
  void attach(models::TransformerLM& model, const SumSquares& sum_squares = {}) const;
  static void detach(models::TransformerLM& model);
  // Moves every trainable leaf's value to `device` (call it before training: a gradient
  // already accumulated stays where it is).
  void to(Device device);
};

// The device of the model's weights (that of its Linear layers), where its adapters,
// their gradients and the optimizer state live.
Device model_device(models::TransformerLM& model);

// New adapters for `model` (mlx-lm's initialization, drawn from `seed` on the host, so
// every device starts from the same values), on the model's device. Throws
// InvalidArgument naming a key that matches no Linear of the blocks; Unsupported for
// full fine-tuning of a quantized layer.
LoraAdapters make_lora(models::TransformerLM& model, const LoraConfig& config, uint64_t seed);

// The Linear layers of the model by full path.
std::map<std::string, nn::Linear*> linear_layers(models::TransformerLM& model);

// The squared row norms (f32 [out]) of a Linear's weight, dequantized when packed: DoRA's
// initial magnitude is their square root.
Tensor squared_row_norms(const nn::WeightMatrix& weight);
// DoRA's denominator: the row norms ||W + scale * (a @ b)^T|| (f32 [out]) of a Linear's
// weight, dequantized when packed; and their squares (what the ranks of a split layer add).
Tensor dora_row_norms(const nn::WeightMatrix& weight, const Tensor& a, const Tensor& b, float scale);
Tensor dora_squared_row_norms(const nn::WeightMatrix& weight, const Tensor& a, const Tensor& b, float scale);
// The dense weight as f32 [out, in] (dequantized when packed).
Tensor dense_f32(const nn::WeightMatrix& weight);

}  // namespace lmx::train
