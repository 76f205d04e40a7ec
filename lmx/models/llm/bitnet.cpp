// BitNet b1.58: Llama with a squared-ReLU gated MLP and RMSNorm "sub-norms" on the
// attention output and the MLP's intermediate activations.
#include "lmx/models/llm/common.h"

namespace lmx::models::llm {

TransformerSpec bitnet(const ConfigReader& c) {
  TransformerSpec s = llama(c);
  const auto act = nn::parse_activation(c.get_string("hidden_act", "relu2"));
  for (auto& ls : s.layers) {
    ls.attention.sub_norm = true;
    ls.mlp.act = act;
    ls.mlp.sub_norm_eps = s.norm_eps;
  }
  return s;
}

}  // namespace lmx::models::llm
