// qwen3_next: Qwen3-MoE's blocks with three of every four attention layers replaced by
// gated delta-net linear attention ("linear_attention"); the full attention layers gate
// their output per head (q_proj yields the gate) and norm q / k by (1 + w); every norm
// scales by (1 + w); the MoE adds a sigmoid-gated shared expert. qwen3_5_text /
// qwen3_5_moe_text: the same with Qwen3.5's separate delta-net projections.
#include "lmx/models/llm/common.h"
#include "lmx/models/recurrent/hybrid_lm.h"
#include "lmx/models/recurrent/recurrent_models.h"
#include "lmx/nn/ssm/gated_delta_net.h"

namespace lmx::models::recurrent {
namespace {

// Without "layer_types": every full_attention_interval-th layer is full attention.
std::string qwen3_next_layer_type(const ConfigReader& c, int64_t layer) {
  const int64_t interval = c.get_int("full_attention_interval", 4);
  if (interval <= 0) c.fail("full_attention_interval", "must be positive");
  return (layer + 1) % interval == 0 ? "full_attention" : "linear_attention";
}

// Qwen3-Next, or with `split` Qwen3.5's text model (separate delta-net projections; a dense
// MLP when the config has no experts; top-k routing weights always renormalized).
std::unique_ptr<LanguageModel> qwen3_next_like(const ConfigReader& c, bool split) {
  const TransformerSpec base = split && !c.has("num_experts") ? llm::qwen3(c) : llm::qwen3_moe(c);
  HybridSpec s = hybrid_spec(base);
  s.model_type = c.get_string("model_type", base.model_type);
  s.norm_unit_offset = true;
  const int64_t head_dim = base.layers.at(0).attention.head_dim;
  if (auto rp = c.object("rope_parameters"); rp && rp->has("partial_rotary_factor")) {
    const double partial = rp->get_positive("partial_rotary_factor", 1.0);
    if (partial > 1.0) rp->fail("partial_rotary_factor", "must be in (0, 1]");
    s.rope = llm::read_rope(c, static_cast<int64_t>(static_cast<double>(head_dim) * partial));
  }
  const int64_t layers = static_cast<int64_t>(base.layers.size());
  const std::vector<std::string> types = llm::read_layer_types(c, layers, qwen3_next_layer_type);
  nn::GatedDeltaNetOptions gd;
  gd.hidden = s.hidden;
  gd.k_heads = c.require_int("linear_num_key_heads");
  gd.v_heads = c.require_int("linear_num_value_heads");
  gd.k_dim = c.require_int("linear_key_head_dim");
  gd.v_dim = c.require_int("linear_value_head_dim");
  gd.conv_kernel = c.get_int("linear_conv_kernel_dim", 4);
  gd.norm_eps = s.norm_eps;
  gd.split_projections = split;
  if (gd.k_heads <= 0 || gd.v_heads <= 0 || gd.v_heads % gd.k_heads != 0) {
    c.fail("linear_num_value_heads", "must be a positive multiple of linear_num_key_heads");
  }
  if (gd.k_dim <= 0 || gd.v_dim <= 0) c.fail("linear_key_head_dim", "and linear_value_head_dim must be positive");
  if (gd.conv_kernel <= 0) c.fail("linear_conv_kernel_dim", "must be positive");
  const int64_t shared = c.get_int("shared_expert_intermediate_size", 0);
  if (shared < 0) c.fail("shared_expert_intermediate_size", "must be >= 0");
  for (int64_t i = 0; i < layers; ++i) {
    const LayerSpec& b = base.layers[static_cast<size_t>(i)];
    HybridLayerSpec ls;
    ls.moe = b.moe;
    ls.mlp = b.mlp;
    ls.moe_options = b.moe_options;
    if (split) ls.moe_options.norm_topk_prob = true;  // Qwen3.5's router always renormalizes (no config key)
    if (b.moe) ls.shared_expert_intermediate = shared;
    const std::string& t = types[static_cast<size_t>(i)];
    if (t == "linear_attention") {
      ls.mixer_name = "linear_attn";
      ls.make_mixer = [gd] { return std::make_unique<nn::GatedDeltaNet>(gd); };
    } else if (t == "full_attention") {
      ls.attention = b.attention;
      ls.attention.qk_norm_unit_offset = true;
      ls.attention.output_gate = true;
    } else {
      c.fail("layer_types", "has unknown layer type '" + t + "' (linear_attention or full_attention)");
    }
    s.layers.push_back(std::move(ls));
  }
  return std::make_unique<HybridLM>(std::move(s));
}

}  // namespace

std::unique_ptr<LanguageModel> qwen3_next(const ConfigReader& c) { return qwen3_next_like(c, false); }
std::unique_ptr<LanguageModel> qwen3_5(const ConfigReader& c) { return qwen3_next_like(c, true); }

}  // namespace lmx::models::recurrent
