// jamba: Mamba layers (with RMSNorms on dt, B and C) and attention layers without
// positions, each followed by a SwiGLU MLP or a sparse MoE (softmax router named
// "router", top-k weights not renormalized), layer kinds given by periods and offsets.
#include "lmx/models/llm/common.h"
#include "lmx/models/recurrent/hybrid_lm.h"
#include "lmx/models/recurrent/recurrent_models.h"
#include "lmx/nn/ssm/mamba_mixer.h"

namespace lmx::models::recurrent {

std::unique_ptr<LanguageModel> jamba(const ConfigReader& c) {
  const TransformerSpec base = llm::llama_like(c, "jamba");
  HybridSpec s = hybrid_spec(base);
  s.pre_ffn_norm = "pre_ff_layernorm";
  s.final_norm = "final_layernorm";
  s.use_rope = false;
  nn::MambaOptions m;
  m.hidden = s.hidden;
  m.intermediate = c.get_int("mamba_expand", 2) * s.hidden;
  m.state = c.get_int("mamba_d_state", 16);
  m.conv_kernel = c.get_int("mamba_d_conv", 4);
  const bool auto_rank = c.json().contains("mamba_dt_rank") && c.json()["mamba_dt_rank"].is_string();
  m.dt_rank = auto_rank ? (s.hidden + 15) / 16 : c.get_int("mamba_dt_rank", (s.hidden + 15) / 16);
  m.bias = c.get_bool("mamba_proj_bias", false);
  m.conv_bias = c.get_bool("mamba_conv_bias", true);
  m.inner_norms = true;
  m.norm_eps = s.norm_eps;
  if (m.intermediate <= 0) c.fail("mamba_expand", "must be positive");
  if (m.state <= 0) c.fail("mamba_d_state", "must be positive");
  if (m.conv_kernel <= 0) c.fail("mamba_d_conv", "must be positive");
  if (m.dt_rank <= 0) c.fail("mamba_dt_rank", "must be positive");
  const int64_t attn_period = c.get_int("attn_layer_period", 8), attn_offset = c.get_int("attn_layer_offset", 4);
  const int64_t expert_period = c.get_int("expert_layer_period", 2), expert_offset = c.get_int("expert_layer_offset", 1);
  if (attn_period <= 0) c.fail("attn_layer_period", "must be positive");
  if (expert_period <= 0) c.fail("expert_layer_period", "must be positive");
  const int64_t experts = c.get_int("num_experts", 16);
  for (size_t i = 0; i < base.layers.size(); ++i) {
    const auto li = static_cast<int64_t>(i);
    HybridLayerSpec ls;
    ls.ffn_name = "feed_forward";
    ls.mlp = base.layers[i].mlp;
    if (li % attn_period == attn_offset) {
      ls.attention = base.layers[i].attention;
    } else {
      ls.mixer_name = "mamba";
      ls.make_mixer = [m] { return std::make_unique<nn::MambaMixer>(m); };
    }
    if (experts > 1 && li % expert_period == expert_offset) {
      ls.moe = true;
      ls.moe_options.hidden = s.hidden;
      ls.moe_options.intermediate = ls.mlp.intermediate;
      ls.moe_options.experts = experts;
      ls.moe_options.top_k = c.get_int("num_experts_per_tok", 2);
      ls.moe_options.norm_topk_prob = false;
      ls.moe_options.act = ls.mlp.act;
      if (ls.moe_options.top_k <= 0 || ls.moe_options.top_k > experts) {
        c.fail("num_experts_per_tok", "must be in [1, num_experts]");
      }
    }
    s.layers.push_back(std::move(ls));
  }
  s.renames = {{"feed_forward.router.", "feed_forward.gate."}};
  return std::make_unique<HybridLM>(std::move(s));
}

}  // namespace lmx::models::recurrent
