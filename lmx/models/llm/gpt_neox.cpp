// GPT-NeoX (Pythia): its own checkpoint names, LayerNorms with biases, a fused qkv
// projection laid out per head, partial rotary, and (by default) a parallel residual.
#include "lmx/models/llm/common.h"

namespace lmx::models::llm {

TransformerSpec gpt_neox(const ConfigReader& c) {
  TransformerSpec s = llama_like(c, "gpt_neox");
  s.norm_kind = nn::NormKind::layer;
  s.norm_eps = static_cast<float>(c.get_non_negative("layer_norm_eps", 1e-5));
  s.parallel_residual = c.get_bool("use_parallel_residual", true);
  s.body_name = "gpt_neox";
  s.embed_name = "embed_in";
  s.attn_name = "attention";
  s.final_norm_name = "final_layer_norm";
  s.lm_head_name = "embed_out";
  s.ropes[0].dim = rotary_dims(c, s.layers[0].attention.head_dim, 0.25);
  const bool bias = c.get_bool("attention_bias", true);
  const auto act = nn::parse_activation(c.get_string("hidden_act", "gelu"));
  for (auto& ls : s.layers) {
    auto& a = ls.attention;
    a.kv_heads = a.heads;
    a.fused_qkv = a.qkv_per_head = true;
    a.qkv_name = "query_key_value";
    a.o_name = "dense";
    a.qkv_bias = a.o_bias = bias;
    ls.mlp.kind = nn::MlpKind::plain;
    ls.mlp.bias = true;
    ls.mlp.act = act;
    ls.mlp.up_name = "dense_h_to_4h";
    ls.mlp.down_name = "dense_4h_to_h";
  }
  return s;
}

}  // namespace lmx::models::llm
