// Phi (1, 1.5, 2): LayerNorm with biases, attention and MLP in parallel from one norm,
// partial rotary, biases everywhere (the output head too), optional q/k LayerNorms.
#include "lmx/models/llm/common.h"

namespace lmx::models::llm {

TransformerSpec phi(const ConfigReader& c) {
  TransformerSpec s = llama_like(c, "phi");
  use_layer_norm(c, s, "layer_norm_eps");
  s.pre_ffn_norm = "";
  s.parallel_residual = true;
  s.final_norm_name = "final_layernorm";
  s.lm_head_bias = true;
  s.ropes[0].dim = rotary_dims(c, s.layers[0].attention.head_dim, 0.5);
  use_plain_mlp(s, nn::parse_activation(c.get_string("hidden_act", "gelu_new")), true, "fc1", "fc2");
  for (auto& ls : s.layers) {
    auto& a = ls.attention;
    a.qkv_bias = a.o_bias = true;
    a.o_name = "dense";
    if (c.get_bool("qk_layernorm", false)) {
      a.qk_norm = nn::QkNorm::per_head_layer;
      a.q_norm_name = "q_layernorm";
      a.k_norm_name = "k_layernorm";
    }
  }
  return s;
}

}  // namespace lmx::models::llm
