// Mixtral: Llama attention with a sparse mixture of experts in every layer.
#include "lmx/models/llm/common.h"

namespace lmx::models::llm {

TransformerSpec mixtral(const ConfigReader& c) {
  TransformerSpec s = llama_like(c, "mixtral");
  s.mlp_name = "block_sparse_moe";
  const int64_t window = c.get_int("sliding_window", 0);
  for (auto& ls : s.layers) {
    ls.attention.window = window;
    ls.moe = true;
    ls.moe_options.hidden = s.hidden;
    ls.moe_options.intermediate = ls.mlp.intermediate;
    ls.moe_options.experts = c.require_int("num_local_experts");
    ls.moe_options.top_k = c.require_int("num_experts_per_tok");
    ls.moe_options.norm_topk_prob = true;  // softmax over the selected experts' logits
    ls.moe_options.act = ls.mlp.act;
  }
  return s;
}

}  // namespace lmx::models::llm
