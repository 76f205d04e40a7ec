// Granite: Llama with embedding, residual, attention and logit multipliers.
#include "lmx/models/llm/common.h"

namespace lmx::models::llm {

TransformerSpec granite(const ConfigReader& c) {
  TransformerSpec s = llama(c);
  s.embed_scale = static_cast<float>(c.get_double("embedding_multiplier", 1.0));
  s.residual_multiplier = static_cast<float>(c.get_double("residual_multiplier", 1.0));
  s.logits_divisor = static_cast<float>(c.get_positive("logits_scaling", 1.0));
  for (auto& ls : s.layers) ls.attention.scale = static_cast<float>(c.get_double("attention_multiplier", 1.0));
  return s;
}

}  // namespace lmx::models::llm
