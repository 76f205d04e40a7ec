// SmolLM3: Llama with some layers that skip RoPE (NoPE).
#include "lmx/models/llm/common.h"

namespace lmx::models::llm {

TransformerSpec smollm3(const ConfigReader& c) {
  TransformerSpec s = llama(c);
  std::vector<int64_t> use_rope = c.get_ints("no_rope_layers");  // 1 = rotate, 0 = NoPE
  const int64_t interval = c.get_int("no_rope_layer_interval", 4);
  if (use_rope.empty()) {
    for (size_t i = 0; i < s.layers.size(); ++i) use_rope.push_back((static_cast<int64_t>(i) + 1) % interval != 0);
  }
  if (use_rope.size() != s.layers.size()) c.fail("no_rope_layers", "must have one entry per layer");
  for (size_t i = 0; i < s.layers.size(); ++i) s.layers[i].rope_index = use_rope[i] ? 0 : -1;
  return s;
}

}  // namespace lmx::models::llm
