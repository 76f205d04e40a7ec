// GLM-4-MoE (GLM-4.5): partial RoPE, optional per-head q/k RMSNorm, q/k/v biases, and
// DeepSeek-V3's routing (sigmoid scores, correction bias, groups) with shared experts.
#include "lmx/models/llm/moe_families.h"

namespace lmx::models::llm {

TransformerSpec glm4_moe(const ConfigReader& c) {
  TransformerSpec s = llama_like(c, "glm4_moe");
  for (auto& ls : s.layers) {
    ls.attention.qkv_bias = c.get_bool("attention_bias", false);
    if (c.get_bool("use_qk_norm", false)) ls.attention.qk_norm = nn::QkNorm::per_head;
  }
  deepseek_moe_layers(c, s, true);
  return s;
}

}  // namespace lmx::models::llm
