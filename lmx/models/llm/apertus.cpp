// Apertus: Llama attention with per-head q/k RMSNorm, its own norm names, and an
// ungated MLP with the learned xIELU activation.
#include "lmx/models/llm/common.h"

namespace lmx::models::llm {

TransformerSpec apertus(const ConfigReader& c) {
  TransformerSpec s = llama(c);
  s.pre_attn_norm = "attention_layernorm";
  s.pre_ffn_norm = "feedforward_layernorm";
  for (auto& ls : s.layers) ls.attention.qk_norm = nn::QkNorm::per_head;
  use_plain_mlp(s, nn::parse_activation(c.get_string("hidden_act", "xielu")), false, "up_proj", "down_proj");
  return s;
}

}  // namespace lmx::models::llm
