// PhiMoE (Phi-3.5-MoE): LayerNorms, biased attention and output projection, and
// sparsemixer top-2 routing over the experts of "block_sparse_moe".
#include "lmx/models/llm/moe_families.h"

namespace lmx::models::llm {

TransformerSpec phimoe(const ConfigReader& c) {
  TransformerSpec s = llama_like(c, "phimoe");
  s.norm_kind = nn::NormKind::layer;
  s.mlp_name = "block_sparse_moe";
  s.renames = {{".mlp.router.", ".block_sparse_moe.gate."}, {".mlp.experts.", ".block_sparse_moe.experts."}};
  s.lm_head_bias = c.get_bool("lm_head_bias", false);
  nn::MoeOptions o = read_moe(c, s, "intermediate_size", "num_local_experts", "num_experts_per_tok");
  if (o.top_k != 2) c.fail("num_experts_per_tok", "must be 2 (sparsemixer routing)");
  o.routing.scoring = nn::MoeScoring::sparsemixer;
  o.routing.jitter_eps = static_cast<float>(c.get_non_negative("router_jitter_noise", 0.0));
  const int64_t window = c.get_int("sliding_window", 0);
  for (auto& ls : s.layers) {
    ls.attention.qkv_bias = ls.attention.o_bias = c.get_bool("attention_bias", false);
    ls.attention.window = window;
  }
  moe_in_every_layer(s, o);
  return s;
}

}  // namespace lmx::models::llm
