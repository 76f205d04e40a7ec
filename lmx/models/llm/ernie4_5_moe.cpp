// ERNIE 4.5 MoE: interleaved RoPE, softmax routing whose choice adds a per-expert
// correction bias (moe_statics), shared experts, MoE layers from moe_layer_start_index
// every moe_layer_interval.
#include "lmx/models/llm/moe_families.h"

namespace lmx::models::llm {

TransformerSpec ernie4_5_moe(const ConfigReader& c) {
  TransformerSpec s = llama_like(c, "ernie4_5_moe");
  s.ropes.front().traditional = true;
  const bool bias = c.get_bool("use_bias", false);
  nn::MoeOptions o = read_moe(c, s, "moe_intermediate_size", "moe_num_experts", "moe_k");
  o.correction_bias = "moe_statics.e_score_correction_bias";
  o.expert_bias = bias;
  o.shared_intermediate = c.get_int("moe_num_shared_experts", 0) * o.intermediate;
  if (o.shared_intermediate < 0) c.fail("moe_num_shared_experts", "must be >= 0");
  const auto layers = static_cast<int64_t>(s.layers.size());
  const int64_t start = c.get_int("moe_layer_start_index", 0);
  const int64_t end = c.get_int("moe_layer_end_index", layers - 1);
  const int64_t interval = c.get_int("moe_layer_interval", 1);
  if (interval <= 0) c.fail("moe_layer_interval", "must be positive");
  for (int64_t i = 0; i < layers; ++i) {
    auto& ls = s.layers[static_cast<size_t>(i)];
    ls.attention.qkv_bias = ls.attention.o_bias = ls.mlp.bias = bias;
    if ((i + 1) % interval != 0 || i < start || (end >= 0 && i > end)) continue;
    ls.moe = true;
    ls.moe_options = o;
  }
  return s;
}

}  // namespace lmx::models::llm
