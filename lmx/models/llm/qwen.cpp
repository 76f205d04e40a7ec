// Qwen2 (q/k/v biases), Qwen3 (per-head q/k RMSNorm), Qwen3-MoE (sparse experts) and
// Qwen2-MoE (Qwen2 attention, experts plus a shared expert behind a sigmoid gate).
#include "lmx/base/error.h"
#include "lmx/models/llm/moe_families.h"

namespace lmx::models::llm {
namespace {

// Qwen2's optional sliding window applies from layer max_window_layers on.
std::string qwen2_layer_type(const ConfigReader& c, int64_t i) {
  const bool sliding = c.get_bool("use_sliding_window", false) && i >= c.get_int("max_window_layers", 0);
  return sliding ? "sliding_attention" : "full_attention";
}


// Sparse experts every decoder_sparse_step layers except mlp_only_layers.
void apply_moe(const ConfigReader& c, TransformerSpec& s, const nn::MoeOptions& o) {
  const int64_t step = c.get_int("decoder_sparse_step", 1);
  const std::vector<int64_t> dense_layers = c.get_ints("mlp_only_layers");
  if (step <= 0) c.fail("decoder_sparse_step", "must be positive");
  for (size_t i = 0; i < s.layers.size(); ++i) {
    const bool dense = std::find(dense_layers.begin(), dense_layers.end(), static_cast<int64_t>(i)) !=
                       dense_layers.end();
    if (dense || (static_cast<int64_t>(i) + 1) % step != 0) continue;
    s.layers[i].moe = true;
    s.layers[i].moe_options = o;
  }
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
  if (experts <= 0) return s;
  nn::MoeOptions o = read_moe(c, s, "moe_intermediate_size", c.has("num_experts") ? "num_experts" : "num_local_experts",
                              "num_experts_per_tok");
  o.norm_topk_prob = c.get_bool("norm_topk_prob", false);
  apply_moe(c, s, o);
  return s;
}

TransformerSpec qwen2_moe(const ConfigReader& c) {
  TransformerSpec s = llama_like(c, "qwen2_moe");
  for (auto& ls : s.layers) ls.attention.qkv_bias = c.get_bool("qkv_bias", true);
  apply_layer_types(c, s, qwen2_layer_type);
  nn::MoeOptions o = read_moe(c, s, "moe_intermediate_size", c.has("num_experts") ? "num_experts" : "num_local_experts",
                              "num_experts_per_tok");
  o.norm_topk_prob = c.get_bool("norm_topk_prob", false);
  o.shared_intermediate = c.get_int("shared_expert_intermediate_size", 0);
  if (o.shared_intermediate < 0) c.fail("shared_expert_intermediate_size", "must be >= 0");
  o.shared_name = "shared_expert";
  o.shared_gate = true;
  apply_moe(c, s, o);
  return s;
}

}  // namespace lmx::models::llm
