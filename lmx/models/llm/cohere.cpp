// Command-R (cohere): one LayerNorm without bias feeding attention and MLP in parallel,
// interleaved rotary pairs, optional q/k LayerNorms with a scale per head, logits
// multiplied by logit_scale. Command-R7B (cohere2) adds sliding-window layers; its
// full-attention layers use no rotary at all.
#include "lmx/models/llm/common.h"

namespace lmx::models::llm {

namespace {
std::string cohere2_layer_type(const ConfigReader& c, int64_t i) {
  const int64_t pattern = c.get_int("sliding_window_pattern", 4);
  if (pattern <= 0) c.fail("sliding_window_pattern", "must be positive");
  return (i + 1) % pattern != 0 ? "sliding_attention" : "full_attention";
}
}  // namespace

TransformerSpec cohere(const ConfigReader& c) {
  TransformerSpec s = llama_like(c, c.get_string("model_type", "cohere"));
  use_layer_norm(c, s, "layer_norm_eps", /*bias=*/false);
  s.pre_ffn_norm = "";
  s.parallel_residual = true;
  s.tie_embeddings = c.get_bool("tie_word_embeddings", true);
  s.logits_divisor = static_cast<float>(1.0 / c.get_positive("logit_scale", 0.0625));
  for (auto& r : s.ropes) r.traditional = true;
  const bool bias = c.get_bool("attention_bias", false);
  for (auto& ls : s.layers) {
    ls.attention.qkv_bias = ls.attention.o_bias = bias;
    if (c.get_bool("use_qk_norm", false)) ls.attention.qk_norm = nn::QkNorm::head_wise_layer;
  }
  return s;
}

TransformerSpec cohere2(const ConfigReader& c) {
  TransformerSpec s = cohere(c);
  apply_layer_types(c, s, cohere2_layer_type, /*nope_on_full=*/true);
  return s;
}

}  // namespace lmx::models::llm
