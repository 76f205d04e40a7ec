// OLMoE: Llama attention with RMSNorm over the whole q and k projections (and an optional
// clip_qkv), sparse experts in every layer.
#include "lmx/models/llm/moe_families.h"

namespace lmx::models::llm {

TransformerSpec olmoe(const ConfigReader& c) {
  TransformerSpec s = llama_like(c, "olmoe");
  nn::MoeOptions o = read_moe(c, s, "intermediate_size", "num_experts", "num_experts_per_tok");
  o.norm_topk_prob = c.get_bool("norm_topk_prob", false);
  const auto clip = static_cast<float>(c.get_non_negative("clip_qkv", 0.0));
  for (auto& ls : s.layers) {
    ls.attention.qk_norm = nn::QkNorm::full;
    ls.attention.qkv_bias = ls.attention.o_bias = c.get_bool("attention_bias", false);
    ls.attention.clip_qkv = clip;
  }
  moe_in_every_layer(s, o);
  return s;
}

}  // namespace lmx::models::llm
