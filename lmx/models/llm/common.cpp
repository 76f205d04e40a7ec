#include "lmx/models/llm/common.h"

#include "lmx/base/error.h"

namespace lmx::models::llm {

TransformerSpec llama_like(const ConfigReader& c, const std::string& model_type) {
  TransformerSpec s;
  s.model_type = model_type;
  s.vocab = c.require_int("vocab_size");
  s.hidden = c.require_int("hidden_size");
  const int64_t layers = c.require_int("num_hidden_layers");
  const int64_t heads = c.require_int("num_attention_heads");
  if (layers <= 0 || layers > 4096) c.fail("num_hidden_layers", "must be in [1, 4096]");
  if (heads <= 0 || (s.hidden % heads != 0 && !c.has("head_dim"))) {
    c.fail("num_attention_heads", "must divide hidden_size (or head_dim must be given)");
  }
  if (s.vocab <= 0) c.fail("vocab_size", "must be positive");
  if (s.hidden <= 0) c.fail("hidden_size", "must be positive");
  const int64_t kv_heads = c.get_int("num_key_value_heads", heads);
  if (kv_heads <= 0 || heads % kv_heads != 0) {
    c.fail("num_key_value_heads", "must be positive and divide num_attention_heads");
  }
  const int64_t head_dim = c.get_int("head_dim", s.hidden / heads);
  if (head_dim <= 0) c.fail("head_dim", "must be positive");
  s.norm_eps = static_cast<float>(c.get_non_negative("rms_norm_eps", 1e-6));
  s.tie_embeddings = c.get_bool("tie_word_embeddings", false);
  s.ropes.push_back(read_rope(c, rotary_dims(c, head_dim, 1.0)));
  LayerSpec ls;
  ls.attention.hidden = s.hidden;
  ls.attention.heads = heads;
  ls.attention.kv_heads = kv_heads;
  ls.attention.head_dim = head_dim;
  ls.attention.norm_eps = s.norm_eps;
  ls.mlp.hidden = s.hidden;
  ls.mlp.intermediate = c.require_int("intermediate_size");
  if (ls.mlp.intermediate <= 0) c.fail("intermediate_size", "must be positive");
  ls.mlp.act = nn::parse_activation(c.get_string("hidden_act", "silu"));
  s.layers.assign(static_cast<size_t>(layers), ls);
  return s;
}

void use_layer_norm(const ConfigReader& c, TransformerSpec& s, const std::string& eps_key, bool bias) {
  s.norm_kind = nn::NormKind::layer;
  s.norm_bias = bias;
  s.norm_eps = static_cast<float>(c.get_non_negative(eps_key, 1e-5));
  for (auto& ls : s.layers) ls.attention.norm_eps = s.norm_eps;
}

void use_plain_mlp(TransformerSpec& s, nn::Activation act, bool bias, const std::string& up,
                   const std::string& down) {
  for (auto& ls : s.layers) {
    ls.mlp.kind = nn::MlpKind::plain;
    ls.mlp.act = act;
    ls.mlp.bias = bias;
    ls.mlp.up_name = up;
    ls.mlp.down_name = down;
  }
}

int64_t rotary_dims(const ConfigReader& c, int64_t head_dim, double fallback) {
  std::string key = "partial_rotary_factor";
  double partial = fallback;
  if (c.has(key)) {
    partial = c.get_positive(key, fallback);
  } else if (auto params = c.object("rope_parameters"); params && params->has(key)) {
    partial = params->get_positive(key, fallback);
  } else if (c.has("rotary_pct")) {  // GPT-NeoX before transformers v5
    key = "rotary_pct";
    partial = c.get_positive(key, fallback);
  }
  if (partial > 1.0) c.fail(key, "must be in (0, 1]");
  return static_cast<int64_t>(static_cast<double>(head_dim) * partial);
}

nn::RopeConfig read_rope(const ConfigReader& c, int64_t dim, const std::string& layer_type) {
  nn::RopeConfig r;
  r.dim = dim;
  r.max_position_embeddings = c.get_int("max_position_embeddings", 2048);
  if (r.max_position_embeddings <= 0) c.fail("max_position_embeddings", "must be positive");
  r.original_max_position_embeddings = c.get_int("original_max_position_embeddings", 0);
  if (r.original_max_position_embeddings < 0) c.fail("original_max_position_embeddings", "must be >= 0");
  r.theta = c.get_positive("rope_theta", 10000.0);
  std::optional<ConfigReader> params = c.object("rope_parameters");
  // Keyed by layer type (v5): the named type's entry, else the full-attention one.
  const std::string type = layer_type.empty() ? "full_attention" : layer_type;
  if (params && params->has(type)) params = params->object(type);
  if (!params) params = c.object("rope_scaling");
  if (!params) return r;
  r.theta = params->get_positive("rope_theta", r.theta);
  r.type = params->get_string("rope_type", params->get_string("type", "default"));
  if (r.type == "su") r.type = "longrope";  // Phi-3's first name for it
  if (r.type == "mrope") r.type = "default";  // Qwen2-VL's: lmx/models/vlm reads its sections
  r.factor = params->get_positive("factor", 1.0);
  r.low_freq_factor = params->get_positive("low_freq_factor", 1.0);
  r.high_freq_factor = params->get_positive("high_freq_factor", 4.0);
  r.original_max_position_embeddings =
      params->get_int("original_max_position_embeddings", r.original_max_position_embeddings);
  r.short_factor = params->get_doubles("short_factor");
  r.long_factor = params->get_doubles("long_factor");
  r.attention_factor = params->get_non_negative("attention_factor", 0.0);
  r.beta_fast = params->get_positive("beta_fast", r.beta_fast);
  r.beta_slow = params->get_positive("beta_slow", r.beta_slow);
  r.mscale = params->get_non_negative("mscale", 0.0);
  r.mscale_all_dim = params->get_non_negative("mscale_all_dim", 0.0);
  r.truncate = params->get_bool("truncate", true);
  if (r.type == "proportional") r.proportion = params->get_positive("partial_rotary_factor", 1.0);
  return r;
}

void apply_layer_types(const ConfigReader& c, TransformerSpec& s,
                       std::string (*fallback)(const ConfigReader&, int64_t), bool nope_on_full) {
  const auto types = read_layer_types(c, static_cast<int64_t>(s.layers.size()), fallback);
  const int64_t window = c.get_int("sliding_window", 0);
  if (window < 0) c.fail("sliding_window", "must be >= 0");
  // v5 "rope_parameters" keyed by layer type (OLMo 3): one rope per type, [full, sliding].
  const auto params = c.object("rope_parameters");
  const bool rope_per_type = params && params->has("sliding_attention") && s.ropes.size() == 1;
  if (rope_per_type) {
    nn::RopeConfig sliding = read_rope(c, s.ropes[0].dim, "sliding_attention");
    sliding.traditional = s.ropes[0].traditional;
    sliding.inverted = s.ropes[0].inverted;
    s.ropes.push_back(sliding);
  }
  for (size_t i = 0; i < s.layers.size(); ++i) {
    const bool sliding = types[i] == "sliding_attention";
    s.layers[i].attention.window = sliding ? window : 0;
    if (rope_per_type && sliding) s.layers[i].rope_index = 1;
    if (nope_on_full && !sliding) s.layers[i].rope_index = -1;
  }
}

std::vector<std::string> read_layer_types(const ConfigReader& c, int64_t layers,
                                          std::string (*fallback)(const ConfigReader&, int64_t)) {
  std::vector<std::string> out;
  if (c.has("layer_types")) {
    for (const auto& v : c.json().at("layer_types")) {
      if (!v.is_string()) c.fail("layer_types", "must be a list of strings");
      out.push_back(v.get<std::string>());
    }
    if (static_cast<int64_t>(out.size()) != layers) {
      c.fail("layer_types", "has " + std::to_string(out.size()) + " entries for " + std::to_string(layers) +
                                " layers");
    }
    return out;
  }
  for (int64_t i = 0; i < layers; ++i) out.push_back(fallback(c, i));
  return out;
}

}  // namespace lmx::models::llm
