// Llama (incl. rope_scaling llama3 / linear / dynamic) and Mistral, which shares it.
#include "lmx/models/llm/common.h"

namespace lmx::models::llm {

TransformerSpec llama(const ConfigReader& c) {
  TransformerSpec s = llama_like(c, c.get_string("model_type", "llama"));
  const bool attention_bias = c.get_bool("attention_bias", false);
  const int64_t window = c.get_int("sliding_window", 0);  // Mistral v0.1
  for (auto& ls : s.layers) {
    ls.attention.qkv_bias = attention_bias;
    ls.attention.o_bias = attention_bias;
    ls.attention.window = window;
    ls.mlp.bias = c.get_bool("mlp_bias", false);
  }
  return s;
}

}  // namespace lmx::models::llm
