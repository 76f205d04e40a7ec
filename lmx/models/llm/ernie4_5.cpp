// ERNIE 4.5 (dense): Llama with optional biases on every projection and rotary in
// interleaved pairs.
#include "lmx/models/llm/common.h"

namespace lmx::models::llm {

TransformerSpec ernie4_5(const ConfigReader& c) {
  TransformerSpec s = llama_like(c, "ernie4_5");
  s.tie_embeddings = c.get_bool("tie_word_embeddings", true);
  for (auto& r : s.ropes) r.traditional = true;
  const bool bias = c.get_bool("use_bias", false);
  for (auto& ls : s.layers) {
    ls.attention.qkv_bias = ls.attention.o_bias = bias;
    ls.mlp.bias = bias;
  }
  return s;
}

}  // namespace lmx::models::llm
