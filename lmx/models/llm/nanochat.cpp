// NanoChat: RMSNorms without learned scales (also on the embeddings), q/k normalized
// after a rotary that turns the other way, a plain squared-ReLU MLP (fc1, fc2) and
// final logit soft-capping.
#include "lmx/models/llm/common.h"

namespace lmx::models::llm {

TransformerSpec nanochat(const ConfigReader& c) {
  TransformerSpec s = llama(c);
  s.norm_weight = false;
  s.norm_embeddings = true;
  s.final_softcap = static_cast<float>(c.get_non_negative("final_logit_softcapping", 0.0));
  for (auto& r : s.ropes) r.inverted = true;
  use_plain_mlp(s, nn::parse_activation(c.get_string("hidden_act", "relu2")), false, "fc1", "fc2");
  for (auto& ls : s.layers) {
    ls.attention.qk_norm = nn::QkNorm::weightless;
    ls.attention.qk_norm_after_rope = true;
  }
  return s;
}

}  // namespace lmx::models::llm
