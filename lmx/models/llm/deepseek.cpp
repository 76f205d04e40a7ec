// DeepSeek-V2 / V3 (and Kimi K2, a V3): multi-head latent attention with interleaved
// RoPE (YaRN in the released models; V3 folds its mscale into the softmax scale), dense
// MLPs in the first layers, then shared + routed experts.
#include "lmx/models/llm/moe_families.h"

#include <cmath>

namespace lmx::models::llm {
namespace {

TransformerSpec deepseek(const ConfigReader& c, const std::string& type, bool v3) {
  TransformerSpec s = llama_like(c, type);
  nn::MlaOptions m;
  m.hidden = s.hidden;
  m.heads = s.layers.front().attention.heads;
  m.q_lora_rank = c.get_int("q_lora_rank", 0);
  m.kv_lora_rank = c.require_int("kv_lora_rank");
  m.qk_nope_head_dim = c.require_int("qk_nope_head_dim");
  m.qk_rope_head_dim = c.require_int("qk_rope_head_dim");
  m.v_head_dim = c.require_int("v_head_dim");
  for (const char* key : {"kv_lora_rank", "qk_rope_head_dim", "v_head_dim"}) {
    if (c.get_int(key, 0) <= 0) c.fail(key, "must be positive");
  }
  if (m.q_lora_rank < 0) c.fail("q_lora_rank", "must be positive or null");
  if (m.qk_nope_head_dim < 0) c.fail("qk_nope_head_dim", "must be >= 0");
  if (m.qk_rope_head_dim % 2 != 0) c.fail("qk_rope_head_dim", "must be even");
  m.bias = c.get_bool("attention_bias", false);
  m.norm_eps = 1e-6f;  // the latent norms keep their default epsilon, not rms_norm_eps
  s.ropes.front() = read_rope(c, m.qk_rope_head_dim);
  nn::RopeConfig& rope = s.ropes.front();
  rope.traditional = c.get_bool("rope_interleave", true);
  m.scale = 1.0f / std::sqrt(static_cast<float>(m.qk_nope_head_dim + m.qk_rope_head_dim));
  if (v3 && rope.type != "default" && rope.mscale_all_dim > 0) {  // transformers' V2 leaves it out
    const double mscale = nn::yarn_mscale(rope.factor, rope.mscale_all_dim);
    m.scale *= static_cast<float>(mscale * mscale);
  }
  for (auto& ls : s.layers) {
    ls.mla = true;
    ls.mla_options = m;
  }
  deepseek_moe_layers(c, s, v3);
  if (!v3) {
    for (auto& ls : s.layers) ls.moe_options.norm_topk_prob = false;  // V2 never renormalizes
  }
  return s;
}

}  // namespace

TransformerSpec deepseek_v2(const ConfigReader& c) { return deepseek(c, "deepseek_v2", false); }

TransformerSpec deepseek_v3(const ConfigReader& c) {
  return deepseek(c, c.get_string("model_type", "deepseek_v3"), true);
}

}  // namespace lmx::models::llm
