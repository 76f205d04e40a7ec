// OLMo 2: norms after attention and MLP (not before), q/k RMSNorm over the whole
// projection.
#include "lmx/models/llm/common.h"

namespace lmx::models::llm {

TransformerSpec olmo2(const ConfigReader& c) {
  TransformerSpec s = llama(c);
  s.pre_attn_norm = "";
  s.post_attn_norm = "post_attention_layernorm";
  s.pre_ffn_norm = "";
  s.post_ffn_norm = "post_feedforward_layernorm";
  for (auto& ls : s.layers) ls.attention.qk_norm = nn::QkNorm::full;
  return s;
}

}  // namespace lmx::models::llm
