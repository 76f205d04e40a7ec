// Llama with muP-style multipliers on the embeddings, the residual branches and the
// logits: Granite (also on the attention scores) and MiniCPM.
#include <cmath>

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

// As MiniCPM's modeling_minicpm.py (remote code; not in transformers): embeddings times
// scale_emb, each branch times scale_depth / sqrt(layers), and the final hidden state
// divided by hidden_size / dim_model_base before lm_head (the same as dividing the
// bias-free head's logits), also with tied embeddings, which its config defaults to.
TransformerSpec minicpm(const ConfigReader& c) {
  TransformerSpec s = llama(c);
  s.tie_embeddings = c.get_bool("tie_word_embeddings", true);
  const double layers = static_cast<double>(s.layers.size()), hidden = static_cast<double>(s.hidden);
  const double depth = c.get_positive("scale_depth", std::sqrt(layers));
  s.embed_scale = static_cast<float>(c.get_positive("scale_emb", 1.0));
  s.residual_multiplier = static_cast<float>(depth / std::sqrt(layers));
  s.logits_divisor = static_cast<float>(hidden / c.get_positive("dim_model_base", hidden));
  return s;
}

}  // namespace lmx::models::llm
