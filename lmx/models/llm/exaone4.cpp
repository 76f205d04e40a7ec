// EXAONE 4: OLMo-2-style norms after attention and MLP, per-head q/k RMSNorm, local
// (sliding-window, rotary) and global layers; with a window configured, the global
// layers use no rotary (NoPE).
#include "lmx/models/llm/common.h"

namespace lmx::models::llm {

namespace {
// "sliding_window_pattern": a period (every n-th layer global) or letters ("LLLG").
std::string exaone4_layer_type(const ConfigReader& c, int64_t i) {
  if (!c.has("sliding_window")) return "full_attention";
  if (c.has("sliding_window_pattern") && c.json().at("sliding_window_pattern").is_string()) {
    const auto pattern = c.get_string("sliding_window_pattern", "");
    if (pattern.empty()) c.fail("sliding_window_pattern", "must not be empty");
    return pattern[static_cast<size_t>(i) % pattern.size()] == 'G' ? "full_attention" : "sliding_attention";
  }
  const int64_t period = c.get_int("sliding_window_pattern", 4);
  if (period <= 0) c.fail("sliding_window_pattern", "must be positive");
  return (i + 1) % period != 0 ? "sliding_attention" : "full_attention";
}
}  // namespace

TransformerSpec exaone4(const ConfigReader& c) {
  TransformerSpec s = llama_like(c, "exaone4");
  s.pre_attn_norm = "";
  s.post_attn_norm = "post_attention_layernorm";
  s.pre_ffn_norm = "";
  s.post_ffn_norm = "post_feedforward_layernorm";
  for (auto& ls : s.layers) ls.attention.qk_norm = nn::QkNorm::per_head;
  apply_layer_types(c, s, exaone4_layer_type, /*nope_on_full=*/c.has("sliding_window"));
  return s;
}

}  // namespace lmx::models::llm
