// GPT-2 and GPT-BigCode (StarCoder 1, SantaCoder): learned absolute positions, no
// rotary, LayerNorms with biases, a fused c_attn projection. GPT-2 checkpoints store
// their projections as Conv1D [in, out]; GPT-BigCode's are Linear and usually
// multi-query (one kv head).
#include <cmath>

#include "lmx/base/error.h"
#include "lmx/core/ops/shape.h"
#include "lmx/models/llm/common.h"

namespace lmx::models::llm {

namespace {

bool starts_with(const std::string& s, const std::string& p) { return s.rfind(p, 0) == 0; }
bool ends_with(const std::string& s, const std::string& p) {
  return s.size() >= p.size() && s.compare(s.size() - p.size(), p.size(), p) == 0;
}

// HF checkpoints (transformer.* or, on the hub's original gpt2, unprefixed) hold Conv1D
// weights [in, out]; mlx-lm's (model.*) already hold them as [out, in].
void gpt2_sanitize(WeightDict& weights, const TransformerSpec&) {
  WeightDict out;
  for (auto& [key, t] : weights) {
    std::string name = key;
    bool conv1d_layout = true;
    if (starts_with(key, "model.")) {
      name = "transformer." + key.substr(6);
      conv1d_layout = false;
    } else if (!starts_with(key, "transformer.") && !starts_with(key, "lm_head.")) {
      name = "transformer." + key;
    }
    if (ends_with(name, ".attn.bias") || ends_with(name, ".attn.masked_bias")) continue;  // causal-mask buffers
    const bool conv1d = ends_with(name, "attn.c_attn.weight") || ends_with(name, "attn.c_proj.weight") ||
                        ends_with(name, "mlp.c_fc.weight") || ends_with(name, "mlp.c_proj.weight");
    if (conv1d && conv1d_layout && t.ndim() == 2 && is_floating(t.dtype())) {
      out[name] = t.transpose(0, 1).contiguous();
    } else {
      out[name] = t;
    }
  }
  weights = std::move(out);
}

TransformerSpec gpt2_like(const ConfigReader& c, const std::string& model_type) {
  TransformerSpec s;
  s.model_type = model_type;
  s.vocab = c.require_int("vocab_size");
  s.hidden = c.get_int("n_embd", c.get_int("hidden_size", 768));
  const int64_t layers = c.get_int("n_layer", c.get_int("num_hidden_layers", 12));
  const int64_t heads = c.get_int("n_head", c.get_int("num_attention_heads", 12));
  if (s.vocab <= 0) c.fail("vocab_size", "must be positive");
  if (s.hidden <= 0) c.fail("n_embd", "must be positive");
  if (layers <= 0 || layers > 4096) c.fail("n_layer", "must be in [1, 4096]");
  if (heads <= 0 || s.hidden % heads != 0) c.fail("n_head", "must be positive and divide n_embd");
  s.positions = c.get_int("n_positions", c.get_int("max_position_embeddings", 1024));
  if (s.positions <= 0) c.fail("n_positions", "must be positive");
  s.tie_embeddings = c.get_bool("tie_word_embeddings", true);
  s.pre_attn_norm = "ln_1";
  s.pre_ffn_norm = "ln_2";
  s.body_name = "transformer";
  s.embed_name = "wte";
  s.layers_name = "h";
  s.attn_name = "attn";
  s.final_norm_name = "ln_f";
  LayerSpec ls;
  ls.rope_index = -1;
  ls.attention.hidden = s.hidden;
  ls.attention.heads = ls.attention.kv_heads = heads;
  ls.attention.head_dim = s.hidden / heads;
  ls.attention.fused_qkv = true;
  ls.attention.qkv_bias = ls.attention.o_bias = true;
  ls.attention.qkv_name = "c_attn";
  ls.attention.o_name = "c_proj";
  ls.mlp.hidden = s.hidden;
  ls.mlp.intermediate = c.get_int("n_inner", 4 * s.hidden);
  if (ls.mlp.intermediate <= 0) c.fail("n_inner", "must be positive");
  s.layers.assign(static_cast<size_t>(layers), ls);
  use_layer_norm(c, s, "layer_norm_epsilon");
  use_plain_mlp(s, nn::parse_activation(c.get_string("activation_function", "gelu_new")), true, "c_fc", "c_proj");
  return s;
}

}  // namespace

TransformerSpec gpt2(const ConfigReader& c) {
  TransformerSpec s = gpt2_like(c, "gpt2");
  s.sanitize = gpt2_sanitize;
  const bool scaled = c.get_bool("scale_attn_weights", true);
  const bool by_layer = c.get_bool("scale_attn_by_inverse_layer_idx", false);
  for (size_t i = 0; i < s.layers.size(); ++i) {
    auto& a = s.layers[i].attention;
    float scale = scaled ? 1.0f / std::sqrt(static_cast<float>(a.head_dim)) : 1.0f;
    if (by_layer) scale /= static_cast<float>(i + 1);
    a.scale = scale;
  }
  return s;
}

TransformerSpec gpt_bigcode(const ConfigReader& c) {
  TransformerSpec s = gpt2_like(c, "gpt_bigcode");
  const bool multi_query = c.get_bool("multi_query", true);
  for (auto& ls : s.layers) {
    if (multi_query) {
      ls.attention.kv_heads = 1;
    } else {
      ls.attention.qkv_per_head = true;
    }
    if (!c.get_bool("scale_attn_weights", true)) ls.attention.scale = 1.0f;
  }
  return s;
}

}  // namespace lmx::models::llm
