// Llama (incl. rope_scaling llama3 / linear / dynamic) and the families that are Llama
// with one switch: Mistral (shares it), Ministral (per-layer sliding windows), Helium
// (interleaved rotary pairs, no output-projection bias).
#include "lmx/models/llm/common.h"

namespace lmx::models::llm {

namespace {
std::string full_attention(const ConfigReader&, int64_t) { return "full_attention"; }
}  // namespace

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

TransformerSpec ministral(const ConfigReader& c) {
  TransformerSpec s = llama(c);
  apply_layer_types(c, s, full_attention);
  return s;
}

TransformerSpec helium(const ConfigReader& c) {
  TransformerSpec s = llama(c);
  for (auto& r : s.ropes) r.traditional = true;
  for (auto& ls : s.layers) ls.attention.o_bias = false;  // attention_bias covers q, k, v only
  return s;
}

}  // namespace lmx::models::llm
