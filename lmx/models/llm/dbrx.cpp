// DBRX: its own names (transformer.blocks.N.norm_attn_norm..., renamed on load to the
// Llama ones), bias-free LayerNorms, a fused Wqkv clipped to +-clip_qkv, and 16 experts
// stored as three [experts * ffn, d_model] matrices (w1 gate, v1 up, w2 down transposed).
#include "lmx/models/llm/moe_families.h"

namespace lmx::models::llm {

TransformerSpec dbrx(const ConfigReader& c) {
  // DBRX nests and renames the usual keys; translated, the Llama reader does the rest.
  nlohmann::json flat = c.json();
  const auto attn = c.object("attn_config");
  const auto ffn = c.object("ffn_config");
  if (!attn) c.fail("attn_config", "is missing");
  if (!ffn) c.fail("ffn_config", "is missing");
  flat["hidden_size"] = c.require_int("d_model");
  flat["num_attention_heads"] = c.require_int("n_heads");
  flat["num_hidden_layers"] = c.require_int("n_layers");
  flat["max_position_embeddings"] = c.get_int("max_seq_len", 2048);
  flat["num_key_value_heads"] = attn->get_int("kv_n_heads", c.require_int("n_heads"));
  flat["rope_theta"] = attn->get_positive("rope_theta", 10000.0);
  flat["intermediate_size"] = ffn->require_int("ffn_hidden_size");
  flat["rms_norm_eps"] = 1e-5;
  flat.erase("rope_parameters");
  flat.erase("rope_scaling");
  const ConfigReader f(flat, c.source());
  TransformerSpec s = llama_like(f, "dbrx");
  s.norm_kind = nn::NormKind::layer;
  s.norm_bias = false;
  s.mlp_name = "ffn";
  s.renames = {{"transformer.wte.", "model.embed_tokens."},
               {"transformer.norm_f.", "model.norm."},
               {"transformer.blocks.", "model.layers."},
               {".norm_attn_norm.norm_1.", ".input_layernorm."},
               {".norm_attn_norm.norm_2.", ".post_attention_layernorm."},
               {".norm_attn_norm.attn.Wqkv.", ".self_attn.qkv_proj."},
               {".norm_attn_norm.attn.out_proj.", ".self_attn.o_proj."},
               {".ffn.router.layer.", ".ffn.gate."}};
  nn::MoeOptions o;
  o.hidden = s.hidden;
  o.intermediate = s.layers.front().mlp.intermediate;
  o.experts = ffn->require_int("moe_num_experts");
  if (o.experts <= 0) ffn->fail("moe_num_experts", "must be positive");
  o.top_k = ffn->require_int("moe_top_k");
  if (o.top_k <= 0 || o.top_k > o.experts) ffn->fail("moe_top_k", "must be in [1, moe_num_experts]");
  const double p = ffn->get_non_negative("moe_normalize_expert_weights", 1.0);
  if (p != 0.0 && p != 1.0) ffn->fail("moe_normalize_expert_weights", "only 1 (or none) is supported");
  o.norm_topk_prob = p == 1.0;
  if (const auto act = ffn->object("ffn_act_fn")) o.act = nn::parse_activation(act->get_string("name", "silu"));
  const auto clip = static_cast<float>(attn->get_non_negative("clip_qkv", 0.0));
  for (auto& ls : s.layers) {
    ls.attention.fused_qkv = true;
    ls.attention.clip_qkv = clip;
  }
  moe_in_every_layer(s, o);
  return s;
}

}  // namespace lmx::models::llm
