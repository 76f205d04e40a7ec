// Gemma (norms scale by 1 + w, embeddings scaled by sqrt(hidden), GELU), Gemma 2
// (sandwich norms, logit soft-capping, alternating sliding-window layers) and Gemma 3
// text (q/k norms, local layers with their own rope base).
#include <cmath>

#include "lmx/models/llm/common.h"

namespace lmx::models::llm {
namespace {

void gemma_base(const ConfigReader& c, TransformerSpec& s) {
  s.norm_unit_offset = true;
  s.tie_embeddings = c.get_bool("tie_word_embeddings", true);
  s.embed_scale = std::sqrt(static_cast<float>(s.hidden));
  const auto act = nn::parse_activation(c.get_string("hidden_activation", "gelu_pytorch_tanh"));
  for (auto& ls : s.layers) ls.mlp.act = act;
}

void sandwich_norms(TransformerSpec& s) {
  s.post_attn_norm = "post_attention_layernorm";
  s.pre_ffn_norm = "pre_feedforward_layernorm";
  s.post_ffn_norm = "post_feedforward_layernorm";
}

std::string gemma2_layer_type(const ConfigReader&, int64_t i) {
  return i % 2 == 0 ? "sliding_attention" : "full_attention";
}

std::string gemma3_layer_type(const ConfigReader& c, int64_t i) {
  const int64_t pattern = c.get_int("sliding_window_pattern", c.get_int("_sliding_window_pattern", 6));
  return (i + 1) % pattern != 0 ? "sliding_attention" : "full_attention";
}

}  // namespace

TransformerSpec gemma(const ConfigReader& c) {
  TransformerSpec s = llama_like(c, "gemma");
  gemma_base(c, s);
  return s;
}

TransformerSpec gemma2(const ConfigReader& c) {
  TransformerSpec s = llama_like(c, "gemma2");
  gemma_base(c, s);
  sandwich_norms(s);
  s.final_softcap = static_cast<float>(c.get_non_negative("final_logit_softcapping", 0.0));
  const auto types = read_layer_types(c, static_cast<int64_t>(s.layers.size()), gemma2_layer_type);
  const float scale = 1.0f / std::sqrt(static_cast<float>(c.get_positive("query_pre_attn_scalar", 256.0)));
  for (size_t i = 0; i < s.layers.size(); ++i) {
    auto& a = s.layers[i].attention;
    a.scale = scale;
    a.softcap = static_cast<float>(c.get_non_negative("attn_logit_softcapping", 0.0));
    a.window = types[i] == "sliding_attention" ? c.get_int("sliding_window", 4096) : 0;
  }
  return s;
}

TransformerSpec gemma3_text(const ConfigReader& c) {
  TransformerSpec s = llama_like(c, "gemma3_text");
  gemma_base(c, s);
  sandwich_norms(s);
  s.final_softcap = static_cast<float>(c.get_non_negative("final_logit_softcapping", 0.0));
  const int64_t head_dim = s.layers[0].attention.head_dim;
  // Two ropes: global layers (rope_theta + scaling), local layers (rope_local_base_freq).
  s.ropes.clear();
  s.ropes.push_back(read_rope(c, head_dim, "full_attention"));
  nn::RopeConfig local = read_rope(c, head_dim, "sliding_attention");
  if (!c.has("rope_parameters") || !c.object("rope_parameters")->has("sliding_attention")) {
    local = nn::RopeConfig{};
    local.dim = head_dim;
    local.theta = c.get_positive("rope_local_base_freq", 10000.0);
    local.max_position_embeddings = c.get_int("max_position_embeddings", 2048);
  }
  s.ropes.push_back(local);
  const auto types = read_layer_types(c, static_cast<int64_t>(s.layers.size()), gemma3_layer_type);
  const float scale = 1.0f / std::sqrt(static_cast<float>(c.get_positive("query_pre_attn_scalar", 256.0)));
  // EmbeddingGemma: no causal mask; a sliding layer sees |i - j| < sliding_window / 2 + 1
  // (transformers halves the configured window in this mode).
  const bool bidirectional = c.get_bool("use_bidirectional_attention", false);
  const int64_t window = c.get_int("sliding_window", 4096);
  if (window <= 0) c.fail("sliding_window", "must be positive");
  for (size_t i = 0; i < s.layers.size(); ++i) {
    auto& ls = s.layers[i];
    const bool sliding = types[i] == "sliding_attention";
    ls.rope_index = sliding ? 1 : 0;
    ls.attention.scale = scale;
    ls.attention.qk_norm = nn::QkNorm::per_head;
    ls.attention.qk_norm_unit_offset = true;
    ls.attention.softcap = static_cast<float>(c.get_non_negative("attn_logit_softcapping", 0.0));
    ls.attention.window = sliding ? (bidirectional ? window / 2 + 1 : window) : 0;
    ls.attention.causal = !bidirectional;
  }
  return s;
}

}  // namespace lmx::models::llm
