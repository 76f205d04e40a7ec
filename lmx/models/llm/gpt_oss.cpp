// gpt-oss: attention with q/k/v/o biases and learned sink logits, sliding-window and
// full layers alternating, and experts with biases and a clamped SwiGLU
// ((up + 1) * gate * sigmoid(1.702 gate)) behind a biased router.
#include "lmx/models/llm/moe_families.h"

namespace lmx::models::llm {
namespace {

std::string alternating(const ConfigReader&, int64_t i) { return i % 2 == 0 ? "sliding_attention" : "full_attention"; }

}  // namespace

TransformerSpec gpt_oss(const ConfigReader& c) {
  TransformerSpec s = llama_like(c, "gpt_oss");
  nn::MoeOptions o = read_moe(c, s, "intermediate_size", "num_local_experts", "num_experts_per_tok");
  o.norm_topk_prob = true;  // softmax over the chosen experts' logits
  o.router_name = "router";
  o.router_bias = true;
  o.experts_name = "experts";
  o.expert_bias = true;
  o.expert_act = nn::ExpertActivation::clamped_swiglu;
  o.swiglu_limit = static_cast<float>(c.get_positive("swiglu_limit", 7.0));
  o.fused_in_out = true;
  o.fused_interleaved = true;
  const auto types = read_layer_types(c, static_cast<int64_t>(s.layers.size()), alternating);
  const int64_t window = c.get_int("sliding_window", 0);
  if (window < 0) c.fail("sliding_window", "must be >= 0");
  for (size_t i = 0; i < s.layers.size(); ++i) {
    auto& ls = s.layers[i];
    ls.attention.qkv_bias = ls.attention.o_bias = c.get_bool("attention_bias", true);
    ls.attention.sinks = true;
    ls.attention.window = types[i] == "sliding_attention" ? window : 0;
  }
  moe_in_every_layer(s, o);
  return s;
}

}  // namespace lmx::models::llm
