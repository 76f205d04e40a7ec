// GLM-4 (0414): sandwich norms around attention and MLP, a fused gate_up MLP, and
// rotary on the first half of each head in interleaved pairs.
#include "lmx/models/llm/common.h"

namespace lmx::models::llm {

TransformerSpec glm4(const ConfigReader& c) {
  TransformerSpec s = llama_like(c, "glm4");
  s.post_attn_norm = "post_self_attn_layernorm";
  s.post_ffn_norm = "post_mlp_layernorm";
  s.ropes[0].dim = rotary_dims(c, s.layers[0].attention.head_dim, 0.5);
  s.ropes[0].traditional = true;
  for (auto& ls : s.layers) {
    ls.attention.qkv_bias = c.get_bool("attention_bias", true);
    ls.mlp.kind = nn::MlpKind::fused_gated;
  }
  return s;
}

}  // namespace lmx::models::llm
