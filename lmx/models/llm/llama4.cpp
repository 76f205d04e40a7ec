// Llama 4 (text): interleaved RoPE with chunked attention and a weightless q/k norm on
// most layers; NoPE layers with full attention and position-dependent query temperature;
// MoE layers every interleave_moe_layer_step (sigmoid of the top logits scaling the
// experts' inputs, plus a shared expert), dense "feed_forward" MLPs between.
#include "lmx/models/llm/moe_families.h"

#include <algorithm>

namespace lmx::models::llm {

TransformerSpec llama4_text(const ConfigReader& c) {
  TransformerSpec s = llama_like(c, "llama4_text");
  s.mlp_name = "feed_forward";
  s.ropes.front().traditional = true;
  const auto layers = static_cast<int64_t>(s.layers.size());
  std::vector<int64_t> use_rope = c.get_ints("no_rope_layers");
  if (use_rope.empty()) {
    const int64_t interval = c.get_int("no_rope_layer_interval", 4);
    if (interval <= 0) c.fail("no_rope_layer_interval", "must be positive");
    for (int64_t i = 0; i < layers; ++i) use_rope.push_back((i + 1) % interval != 0 ? 1 : 0);
  }
  if (static_cast<int64_t>(use_rope.size()) != layers) c.fail("no_rope_layers", "needs one entry per layer");
  const int64_t step = c.get_int("interleave_moe_layer_step", 1);
  if (step <= 0) c.fail("interleave_moe_layer_step", "must be positive");
  std::vector<int64_t> moe_layers = c.get_ints("moe_layers");
  if (!c.has("moe_layers")) {
    for (int64_t i = step - 1; i < layers; i += step) moe_layers.push_back(i);
  }
  nn::MoeOptions o = read_moe(c, s, "intermediate_size", "num_local_experts", "num_experts_per_tok");
  o.norm_topk_prob = false;
  o.routing.scoring = nn::MoeScoring::sigmoid;
  o.router_name = "router";
  o.experts_name = "experts";
  o.weight_inputs = true;
  o.shared_intermediate = o.intermediate;
  o.shared_name = "shared_expert";
  o.fused_in_out = true;
  const int64_t dense = c.get_int("intermediate_size_mlp", s.layers.front().mlp.intermediate);
  if (dense <= 0) c.fail("intermediate_size_mlp", "must be positive");
  const int64_t chunk = c.get_int("attention_chunk_size", 0);
  if (chunk < 0) c.fail("attention_chunk_size", "must be >= 0");
  const bool temperature = c.get_bool("attn_temperature_tuning", true);
  for (int64_t i = 0; i < layers; ++i) {
    auto& ls = s.layers[static_cast<size_t>(i)];
    ls.attention.qkv_bias = ls.attention.o_bias = c.get_bool("attention_bias", false);
    ls.mlp.intermediate = dense;
    if (use_rope[static_cast<size_t>(i)]) {
      ls.attention.qk_l2_norm = c.get_bool("use_qk_norm", true);
      ls.attention.chunk = chunk;
    } else {
      ls.rope_index = -1;
      if (temperature) {
        ls.attention.temperature_scale = static_cast<float>(c.get_positive("attn_scale", 0.1));
        ls.attention.temperature_floor = static_cast<float>(c.get_positive("floor_scale", 8192.0));
      }
    }
    if (std::find(moe_layers.begin(), moe_layers.end(), i) != moe_layers.end()) {
      ls.moe = true;
      ls.moe_options = o;
    }
  }
  return s;
}

}  // namespace lmx::models::llm
