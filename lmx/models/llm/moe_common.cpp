#include "lmx/models/llm/moe_families.h"

namespace lmx::models::llm {

nn::MoeOptions read_moe(const ConfigReader& c, const TransformerSpec& s, const char* intermediate_key,
                        const char* experts_key, const char* top_k_key) {
  nn::MoeOptions o;
  o.hidden = s.hidden;
  o.intermediate = c.require_int(intermediate_key);
  if (o.intermediate <= 0) c.fail(intermediate_key, "must be positive");
  o.experts = c.require_int(experts_key);
  if (o.experts <= 0) c.fail(experts_key, "must be positive");
  o.top_k = c.require_int(top_k_key);
  if (o.top_k <= 0 || o.top_k > o.experts) c.fail(top_k_key, "must be in [1, " + std::to_string(o.experts) + "]");
  o.act = s.layers.front().mlp.act;
  return o;
}

void moe_in_every_layer(TransformerSpec& s, const nn::MoeOptions& o) {
  for (auto& ls : s.layers) {
    ls.moe = true;
    ls.moe_options = o;
  }
}

void deepseek_moe_layers(const ConfigReader& c, TransformerSpec& s, bool sigmoid_groups) {
  nn::MoeOptions o = read_moe(c, s, "moe_intermediate_size", "n_routed_experts", "num_experts_per_tok");
  o.norm_topk_prob = c.get_bool("norm_topk_prob", false);
  o.routing.routed_scaling = static_cast<float>(c.get_positive("routed_scaling_factor", 1.0));
  o.shared_intermediate = c.get_int("n_shared_experts", 0) * o.intermediate;
  if (o.shared_intermediate < 0) c.fail("n_shared_experts", "must be >= 0");
  const std::string method = c.get_string("topk_method", sigmoid_groups ? "noaux_tc" : "greedy");
  if (sigmoid_groups || method == "group_limited_greedy") {
    o.routing.groups = c.get_int("n_group", 1);
    o.routing.topk_groups = c.get_int("topk_group", 1);
    if (o.routing.groups <= 0 || o.experts % o.routing.groups != 0) c.fail("n_group", "must divide n_routed_experts");
    if (o.routing.topk_groups <= 0 || o.routing.topk_groups > o.routing.groups) c.fail("topk_group", "must be in [1, n_group]");
  }
  if (sigmoid_groups) {
    o.routing.scoring = nn::MoeScoring::sigmoid;
    o.correction_bias = "gate.e_score_correction_bias";
  } else {
    if (method != "greedy" && method != "group_limited_greedy") c.fail("topk_method", "'" + method + "' is not supported");
    o.routing.group_score = nn::GroupScore::max;
  }
  const int64_t first_dense = c.get_int("first_k_dense_replace", 0);
  const int64_t freq = c.get_int("moe_layer_freq", 1);
  if (freq <= 0) c.fail("moe_layer_freq", "must be positive");
  for (size_t i = 0; i < s.layers.size(); ++i) {
    const auto l = static_cast<int64_t>(i);
    if (l < first_dense || l % freq != 0) continue;
    s.layers[i].moe = true;
    s.layers[i].moe_options = o;
  }
}

}  // namespace lmx::models::llm
