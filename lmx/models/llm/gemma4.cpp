// gemma4_text (the language model of Gemma 4, also inside a "gemma4" folder): the per-layer
// input Gemma of Gemma 3n (lmx/models/llm/gemma3n.h) without AltUp and LAuReL, whose
// per-layer input joins the residual and whose layers end by scaling their output by a
// stored "layer_scalar". The full-attention layers have their own head geometry
// (per_layer_config since transformers 5.15, global_head_dim before) and a
// "proportional" rope over the whole head. With attention_k_eq_v (31B, 26B-A4B) the
// full-attention layers take their values from the keys' projection (no v_proj); with
// enable_moe_block (26B-A4B) each layer adds a MoE beside its MLP (PerLayerGemmaSpec::moe).
#include "lmx/base/error.h"
#include "lmx/models/llm/common.h"
#include "lmx/models/llm/gemma3n.h"

namespace lmx::models::llm {

std::unique_ptr<LanguageModel> gemma4_text(const ConfigReader& c) {
  if (c.get_string("use_bidirectional_attention", "") == "all") {
    throw Unsupported(c.source() + ": gemma4 use_bidirectional_attention 'all' is not supported yet");
  }
  PerLayerGemmaSpec s = per_layer_gemma_spec(c, "gemma4_text");
  TransformerSpec& b = s.base;
  s.layer_scalar = true;
  const auto per_layer = c.object("per_layer_config");
  const int64_t global_head_dim = c.get_int("global_head_dim", 512);
  const bool double_wide = c.get_bool("use_double_wide_mlp", false);
  // 31B, 26B-A4B: the full-attention layers' values are their keys' projection.
  const bool k_eq_v = c.get_bool("attention_k_eq_v", false);
  int64_t dims[2] = {0, 0};  // head dims of the [full, sliding] layers
  for (size_t i = 0; i < b.layers.size(); ++i) {
    nn::AttentionOptions& a = b.layers[i].attention;
    const bool full = s.types[i] == "full_attention";
    a.values_from_keys = k_eq_v && full && !a.kv_shared;
    if (per_layer) {
      if (auto o = per_layer->object(std::to_string(i))) {
        a.head_dim = o->get_int("head_dim", a.head_dim);
        a.heads = o->get_int("num_attention_heads", a.heads);
        a.kv_heads = o->get_int("num_key_value_heads", a.kv_heads);
      }
    } else if (full) {
      a.head_dim = global_head_dim;
    }
    if (a.head_dim <= 0 || a.heads <= 0 || a.kv_heads <= 0 || a.heads % a.kv_heads != 0) {
      c.fail("per_layer_config", "gives layer " + std::to_string(i) + " " + std::to_string(a.heads) + " heads, " +
                                     std::to_string(a.kv_heads) + " kv heads of " + std::to_string(a.head_dim));
    }
    int64_t& dim = dims[full ? 0 : 1];
    if (dim != 0 && a.head_dim != dim) c.fail("per_layer_config", "gives layers of one type different head dims");
    dim = a.head_dim;
    if (double_wide && b.layers[i].attention.kv_shared) b.layers[i].mlp.intermediate *= 2;
  }
  // Two ropes: [full attention (proportional over the whole head), sliding attention].
  const int64_t head_dim = b.layers[0].attention.head_dim;
  b.ropes = {read_rope(c, dims[0] ? dims[0] : head_dim, "full_attention"),
             read_rope(c, dims[1] ? dims[1] : head_dim, "sliding_attention")};
  if (!c.has("rope_parameters")) {  // transformers' defaults
    b.ropes[0].type = "proportional";
    b.ropes[0].proportion = 0.25;
    b.ropes[0].theta = 1000000.0;
    b.ropes[1].theta = 10000.0;
  }
  if (c.get_bool("enable_moe_block", false)) {  // 26B-A4B
    nn::MoeOptions o;
    o.hidden = b.hidden;
    o.intermediate = c.require_int("moe_intermediate_size");
    o.experts = c.require_int("num_experts");
    o.top_k = c.require_int("top_k_experts");
    o.norm_topk_prob = true;
    o.act = s.act;
    o.router_name = "router.proj";
    o.expert_scale = "router.per_expert_scale";
    // mlx-lm's names ("experts.switch_glu.*"); transformers' fused "experts.gate_up_proj"
    // [E, 2I, H] (gate, then up) and "experts.down_proj" are split into them.
    o.experts_name = "experts.switch_glu";
    s.moe = o;
  }
  return per_layer_gemma(std::move(s));
}

}  // namespace lmx::models::llm
