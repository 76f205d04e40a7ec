// OLMo 2: norms after attention and MLP (not before), q/k RMSNorm over the whole
// projection. OLMo 3 adds sliding-window layers (three of every four by default).
#include "lmx/models/llm/common.h"

namespace lmx::models::llm {

namespace {
std::string olmo3_layer_type(const ConfigReader&, int64_t i) {
  return (i + 1) % 4 != 0 ? "sliding_attention" : "full_attention";
}
}  // namespace

TransformerSpec olmo2(const ConfigReader& c) {
  TransformerSpec s = llama(c);
  s.pre_attn_norm = "";
  s.post_attn_norm = "post_attention_layernorm";
  s.pre_ffn_norm = "";
  s.post_ffn_norm = "post_feedforward_layernorm";
  for (auto& ls : s.layers) ls.attention.qk_norm = nn::QkNorm::full;
  return s;
}

TransformerSpec olmo3(const ConfigReader& c) {
  TransformerSpec s = olmo2(c);
  apply_layer_types(c, s, olmo3_layer_type);
  return s;
}

}  // namespace lmx::models::llm
