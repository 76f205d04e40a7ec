// Per-expert checkpoint tensors (HF: "<moe>.experts.E.gate_proj.weight", Mixtral's w1 /
// w3 / w2) stacked into mlx-lm's "<moe>.switch_mlp.{gate,up,down}_proj.*" layout that
// nn::SparseMoe loads; quantized scales / biases alike.
#pragma once

#include <string>

#include "lmx/models/language_model.h"

namespace lmx::models {

// Stacks the experts of the MoE block at `base` ("model.layers.3.mlp") in place;
// FormatError naming the key when an expert is missing. Nothing happens when the
// checkpoint is already stacked.
void stack_expert_weights(WeightDict& weights, const std::string& base, int64_t experts);

}  // namespace lmx::models
