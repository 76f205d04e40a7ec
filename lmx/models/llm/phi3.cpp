// Phi-3: fused qkv and gate_up projections, longrope ("su") scaling.
#include "lmx/models/llm/common.h"

namespace lmx::models::llm {

TransformerSpec phi3(const ConfigReader& c) {
  TransformerSpec s = llama_like(c, "phi3");
  const int64_t window = c.get_int("sliding_window", 0);
  for (auto& ls : s.layers) {
    ls.attention.fused_qkv = true;
    ls.attention.window = window;
    ls.mlp.kind = nn::MlpKind::fused_gated;
  }
  return s;
}

}  // namespace lmx::models::llm
