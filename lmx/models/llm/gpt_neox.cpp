// GPT-NeoX (Pythia): its own checkpoint names, LayerNorms with biases, a fused qkv
// projection laid out per head, partial rotary, and (by default) a parallel residual.
#include "lmx/models/llm/common.h"

namespace lmx::models::llm {

TransformerSpec gpt_neox(const ConfigReader& c) {
  TransformerSpec s = llama_like(c, "gpt_neox");
  use_layer_norm(c, s, "layer_norm_eps");
  s.parallel_residual = c.get_bool("use_parallel_residual", true);
  s.body_name = "gpt_neox";
  s.embed_name = "embed_in";
  s.attn_name = "attention";
  s.final_norm_name = "final_layer_norm";
  s.lm_head_name = "embed_out";
  s.ropes[0].dim = rotary_dims(c, s.layers[0].attention.head_dim, 0.25);
  const bool bias = c.get_bool("attention_bias", true);
  use_plain_mlp(s, nn::parse_activation(c.get_string("hidden_act", "gelu")), true, "dense_h_to_4h", "dense_4h_to_h");
  for (auto& ls : s.layers) {
    auto& a = ls.attention;
    a.kv_heads = a.heads;
    a.fused_qkv = a.qkv_per_head = true;
    a.qkv_name = "query_key_value";
    a.o_name = "dense";
    a.qkv_bias = a.o_bias = bias;
  }
  return s;
}

}  // namespace lmx::models::llm
