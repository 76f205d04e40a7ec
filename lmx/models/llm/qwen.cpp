// Qwen2 (q/k/v biases), Qwen3 (per-head q/k RMSNorm) and Qwen3-MoE (sparse experts).
#include "lmx/base/error.h"
#include "lmx/models/llm/common.h"

namespace lmx::models::llm {
namespace {

// Qwen2's optional sliding window applies from layer max_window_layers on.
std::string qwen2_layer_type(const ConfigReader& c, int64_t i) {
  const bool sliding = c.get_bool("use_sliding_window", false) && i >= c.get_int("max_window_layers", 0);
  return sliding ? "sliding_attention" : "full_attention";
}


}  // namespace

TransformerSpec qwen2(const ConfigReader& c) {
  TransformerSpec s = llama_like(c, "qwen2");
  for (auto& ls : s.layers) ls.attention.qkv_bias = true;
  apply_layer_types(c, s, qwen2_layer_type);
  return s;
}

TransformerSpec qwen3(const ConfigReader& c) {
  TransformerSpec s = llama_like(c, c.get_string("model_type", "qwen3"));
  for (auto& ls : s.layers) {
    ls.attention.qkv_bias = c.get_bool("attention_bias", false);
    ls.attention.o_bias = ls.attention.qkv_bias;
    ls.attention.qk_norm = nn::QkNorm::per_head;
  }
  apply_layer_types(c, s, qwen2_layer_type);
  return s;
}

TransformerSpec qwen3_moe(const ConfigReader& c) {
  TransformerSpec s = qwen3(c);
  // v4 configs say "num_experts", transformers v5 writes "num_local_experts".
  const int64_t experts = c.get_int("num_experts", c.get_int("num_local_experts", 0));
  const int64_t step = c.get_int("decoder_sparse_step", 1);
  const std::vector<int64_t> dense_layers = c.get_ints("mlp_only_layers");
  if (step <= 0) c.fail("decoder_sparse_step", "must be positive");
  for (size_t i = 0; i < s.layers.size(); ++i) {
    const bool dense = std::find(dense_layers.begin(), dense_layers.end(), static_cast<int64_t>(i)) !=
                       dense_layers.end();
    if (dense || experts <= 0 || (static_cast<int64_t>(i) + 1) % step != 0) continue;
    auto& ls = s.layers[i];
    ls.moe = true;
    ls.moe_options.hidden = s.hidden;
    ls.moe_options.intermediate = c.require_int("moe_intermediate_size");
    ls.moe_options.experts = experts;
    ls.moe_options.top_k = c.require_int("num_experts_per_tok");
    ls.moe_options.norm_topk_prob = c.get_bool("norm_topk_prob", false);
    ls.moe_options.act = ls.mlp.act;
  }
  return s;
}

}  // namespace lmx::models::llm
