// StarCoder2: LayerNorm with biases, biases on every projection, a plain GELU MLP.
#include "lmx/models/llm/common.h"

namespace lmx::models::llm {

TransformerSpec starcoder2(const ConfigReader& c) {
  TransformerSpec s = llama_like(c, "starcoder2");
  use_layer_norm(c, s, "norm_epsilon");
  s.tie_embeddings = c.get_bool("tie_word_embeddings", false);
  const bool bias = c.get_bool("use_bias", true);
  const int64_t window = c.get_int("sliding_window", 0);
  for (auto& ls : s.layers) {
    ls.attention.qkv_bias = bias;
    ls.attention.o_bias = bias;
    ls.attention.window = window;
    ls.mlp.kind = nn::MlpKind::plain;
    ls.mlp.bias = bias;
    ls.mlp.act = nn::parse_activation(c.get_string("hidden_act", "gelu_pytorch_tanh"));
  }
  return s;
}

}  // namespace lmx::models::llm
