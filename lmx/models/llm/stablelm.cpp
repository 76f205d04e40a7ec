// StableLM: LayerNorms with biases, partial rotary, optional q/k LayerNorms with a scale
// per head, optional parallel residual (then one norm feeds both branches).
#include "lmx/models/llm/common.h"

namespace lmx::models::llm {

TransformerSpec stablelm(const ConfigReader& c) {
  TransformerSpec s = llama_like(c, "stablelm");
  use_layer_norm(c, s, "layer_norm_eps");
  s.parallel_residual = c.get_bool("use_parallel_residual", false);
  if (s.parallel_residual) s.pre_ffn_norm = "";
  s.ropes[0].dim = rotary_dims(c, s.layers[0].attention.head_dim, 0.25);
  for (auto& ls : s.layers) {
    auto& a = ls.attention;
    a.qkv_bias = c.get_bool("use_qkv_bias", false);
    if (c.get_bool("qk_layernorm", false)) {
      a.qk_norm = nn::QkNorm::head_wise_layer;
      a.qk_norm_split = true;
      a.q_norm_name = "q_layernorm";
      a.k_norm_name = "k_layernorm";
    }
  }
  return s;
}

}  // namespace lmx::models::llm
