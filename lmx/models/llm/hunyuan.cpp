// Hunyuan dense (v1): Llama with per-head q/k RMSNorm applied after the rotary, and
// the "dynamic" rope with an NTK alpha (a fixed larger base, no length scaling).
#include <cmath>

#include "lmx/models/llm/common.h"

namespace lmx::models::llm {

TransformerSpec hunyuan_v1_dense(const ConfigReader& c) {
  TransformerSpec s = llama(c);
  for (auto& r : s.ropes) {
    std::optional<ConfigReader> params = c.object("rope_parameters");
    if (!params) params = c.object("rope_scaling");
    if (r.type == "dynamic" && params && params->has("alpha")) {
      const double d = static_cast<double>(r.dim);
      r.theta *= std::pow(params->get_positive("alpha", 1.0), d / (d - 2.0));
      r.type = "default";
    }
  }
  const bool qk_norm = c.get_bool("use_qk_norm", true);
  for (auto& ls : s.layers) {
    if (!qk_norm) continue;
    ls.attention.qk_norm = nn::QkNorm::per_head;
    ls.attention.qk_norm_after_rope = true;
    ls.attention.q_norm_name = "query_layernorm";
    ls.attention.k_norm_name = "key_layernorm";
  }
  return s;
}

}  // namespace lmx::models::llm
