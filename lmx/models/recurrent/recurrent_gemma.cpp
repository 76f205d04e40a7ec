// recurrent_gemma: Griffin's residual blocks. Each layer's temporal block is the recurrent
// block (RG-LRU, lmx/nn/ssm/rg_lru.h) or local attention (a sliding window of
// attention_window_size, partial RoPE, a bias on o_proj only), following block_types
// cyclically; then a GeGLU MLP of width intermediate_size / 2 with biases. Norms scale by
// (1 + w); the embeddings are multiplied by sqrt(hidden) rounded to bf16, as transformers
// does; the logits are soft-capped at logits_soft_cap.
#include <cmath>

#include "lmx/core/half.h"
#include "lmx/models/llm/common.h"
#include "lmx/models/recurrent/hybrid_lm.h"
#include "lmx/models/recurrent/recurrent_models.h"
#include "lmx/nn/ssm/rg_lru.h"

namespace lmx::models::recurrent {

std::unique_ptr<LanguageModel> recurrent_gemma(const ConfigReader& c) {
  const TransformerSpec base = llm::llama_like(c, "recurrent_gemma");
  HybridSpec s = hybrid_spec(base);
  s.norm_unit_offset = true;
  s.pre_mixer_norm = "temporal_pre_norm";
  s.pre_ffn_norm = "channel_pre_norm";
  s.final_norm = "final_norm";
  s.tie_embeddings = c.get_bool("tie_word_embeddings", true);
  s.embedding_scale = bf16_to_f32(f32_to_bf16(std::sqrt(static_cast<float>(s.hidden))));
  s.final_softcap = static_cast<float>(c.get_non_negative("logits_soft_cap", 30.0));
  nn::RgLruOptions lru;
  lru.hidden = s.hidden;
  lru.width = c.get_int("lru_width", s.hidden);
  lru.heads = base.layers.at(0).attention.heads;
  lru.conv_kernel = c.get_int("conv1d_width", 4);
  lru.act = nn::parse_activation(c.get_string("hidden_activation", "gelu_pytorch_tanh"));
  if (lru.width <= 0 || lru.width % lru.heads != 0) c.fail("lru_width", "must be a positive multiple of num_attention_heads");
  if (lru.conv_kernel <= 0) c.fail("conv1d_width", "must be positive");
  const int64_t window = c.get_int("attention_window_size", 2048);
  if (window <= 0) c.fail("attention_window_size", "must be positive");
  if (base.layers.at(0).mlp.intermediate % 2 != 0) c.fail("intermediate_size", "must be even");
  std::vector<std::string> kinds;
  if (c.has("block_types")) {
    for (const auto& v : c.json().at("block_types")) {
      if (!v.is_string()) c.fail("block_types", "must be a list of strings");
      kinds.push_back(v.get<std::string>());
    }
  }
  if (kinds.empty()) kinds = {"recurrent", "recurrent", "attention"};
  for (size_t i = 0; i < base.layers.size(); ++i) {
    const LayerSpec& b = base.layers[i];
    HybridLayerSpec ls;
    ls.mixer_name = "temporal_block";
    const std::string& kind = kinds[i % kinds.size()];
    if (kind == "recurrent") {
      ls.make_mixer = [lru] { return std::make_unique<nn::RgLruBlock>(lru); };
    } else if (kind == "attention") {
      ls.attention = b.attention;
      ls.attention.qkv_bias = c.get_bool("attention_bias", false);
      ls.attention.o_bias = true;
      ls.attention.window = window;
    } else {
      c.fail("block_types", "has unknown block type '" + kind + "' (recurrent or attention)");
    }
    ls.ffn_name = "mlp_block";
    ls.mlp = b.mlp;
    ls.mlp.intermediate = b.mlp.intermediate / 2;
    ls.mlp.bias = true;
    ls.mlp.act = lru.act;
    s.layers.push_back(std::move(ls));
  }
  return std::make_unique<HybridLM>(std::move(s));
}

}  // namespace lmx::models::recurrent
