// The checkpoint layouts of mixture-of-experts weights, brought into the stacked layout
// SparseMoe registers (mlx-lm's: "<experts_name>.{gate,up,down}_proj.weight" [E, out, in]):
// per-expert tensors ("experts.N.gate_proj.weight", Mixtral's "experts.N.w1") and
// transformers 5's fused 3-D parameters ("experts.gate_up_proj", "experts.down_proj",
// with "_bias" companions) and DBRX's "experts.mlp.{w1,v1,w2}" [experts * ffn, hidden].
#pragma once

#include <string>

#include "lmx/models/language_model.h"
#include "lmx/nn/moe.h"

namespace lmx::models {

// base: the block's path ("model.layers.3.mlp").
void stack_expert_weights(WeightDict& weights, const std::string& base, const nn::MoeOptions& o);

}  // namespace lmx::models
