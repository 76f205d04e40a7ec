// falcon_h1: every layer runs attention (RoPE) and a Mamba2 mixer side by side on the
// same normed input and adds their outputs, then a SwiGLU MLP. Falcon-H1's muP
// multipliers (embeddings, lm_head, attention input / keys / output, the Mamba2 input,
// each part of its in_proj output, its output, the MLP's gate and down projections) are
// folded into the weights on load, as mlx-lm does, when the checkpoint is transformers'
// (torch's conv layout [channels, 1, kernel]); mlx-lm's and lmx's exports keep MLX's
// [channels, kernel, 1] and have them folded already. With tied embeddings the logits are
// then scaled by lm_head_multiplier / embedding_multiplier.
#include "lmx/base/error.h"
#include "lmx/core/ops/elementwise.h"
#include "lmx/models/llm/common.h"
#include "lmx/models/recurrent/hybrid_lm.h"
#include "lmx/models/recurrent/mamba2_config.h"
#include "lmx/models/recurrent/recurrent_models.h"

namespace lmx::models::recurrent {
namespace {

struct Multipliers {
  double embedding, lm_head, key, attention_in, attention_out, ssm_in, ssm_out;
  std::vector<double> mlp;  // gate, down
  std::vector<double> ssm;  // in_proj parts: gate z, x, B, C, dt
  nn::Mamba2Options mamba;
};

// t * scale, per row when `rows` is given ([t.dim(0)] factors), in t's dtype.
Tensor scaled(const Tensor& t, double scale, const std::vector<float>& rows = {}) {
  Tensor f = ops::mul(t.to(Dtype::f32), scale);
  if (!rows.empty()) {
    Shape shape(static_cast<size_t>(t.ndim()), 1);
    shape[0] = t.dim(0);
    f = ops::mul(f, Tensor::from_vector(rows, shape));
  }
  return f.to(t.dtype());
}

// What transformers multiplies each in_proj output channel by.
std::vector<float> in_proj_rows(const Multipliers& m) {
  const nn::Mamba2Options& o = m.mamba;
  const int64_t gn = o.groups * o.state;
  std::vector<float> rows;
  const std::pair<int64_t, double> parts[] = {
      {o.intermediate, m.ssm[0]}, {o.intermediate, m.ssm[1]}, {gn, m.ssm[2]}, {gn, m.ssm[3]}, {o.heads, m.ssm[4]}};
  for (const auto& [n, v] : parts) rows.insert(rows.end(), static_cast<size_t>(n), static_cast<float>(v));
  return rows;
}

void fold_multipliers(WeightDict& weights, const Multipliers& m) {
  bool torch_layout = false;
  for (const auto& [name, t] : weights) {
    if (name.ends_with("mamba.conv1d.weight") && t.ndim() == 3 && t.dim(1) == 1 && t.dim(2) > 1) torch_layout = true;
  }
  if (!torch_layout) return;
  const std::vector<float> rows = in_proj_rows(m);
  const std::pair<const char*, double> by_suffix[] = {
      {"embed_tokens.weight", m.embedding},
      {"lm_head.weight", m.lm_head},
      {"self_attn.q_proj.weight", m.attention_in},
      {"self_attn.k_proj.weight", m.attention_in * m.key},
      {"self_attn.k_proj.bias", m.key},
      {"self_attn.v_proj.weight", m.attention_in},
      {"self_attn.o_proj.weight", m.attention_out},
      {"self_attn.o_proj.bias", m.attention_out},
      {"mamba.out_proj.weight", m.ssm_out},
      {"mamba.out_proj.bias", m.ssm_out},
      {"feed_forward.gate_proj.weight", m.mlp[0]},
      {"feed_forward.gate_proj.bias", m.mlp[0]},
      {"feed_forward.down_proj.weight", m.mlp[1]},
      {"feed_forward.down_proj.bias", m.mlp[1]},
  };
  for (auto& [name, t] : weights) {
    if (name.ends_with(".scales")) throw FormatError("falcon_h1: a quantized checkpoint must come in MLX's layout ('" + name + "')");
    if (name.ends_with("mamba.in_proj.weight")) t = scaled(t, m.ssm_in, rows);
    if (name.ends_with("mamba.in_proj.bias")) t = scaled(t, 1.0, rows);
    for (const auto& [suffix, v] : by_suffix) {
      if (name.ends_with(suffix)) t = scaled(t, v);
    }
  }
}

// A list of `n` multipliers (all 1 when absent).
std::vector<double> multiplier_list(const ConfigReader& c, const std::string& key, size_t n) {
  std::vector<double> v = c.get_doubles(key);
  if (v.empty()) v.assign(n, 1.0);
  if (v.size() != n) c.fail(key, "must hold " + std::to_string(n) + " numbers");
  return v;
}

}  // namespace

std::unique_ptr<LanguageModel> falcon_h1(const ConfigReader& c) {
  const TransformerSpec base = llm::llama_like(c, "falcon_h1");
  HybridSpec s = hybrid_spec(base);
  s.pre_ffn_norm = "pre_ff_layernorm";
  s.final_norm = "final_layernorm";
  s.conv_mlx_layout = true;
  Mamba2Keys keys = hybrid_mamba2_keys();
  keys.intermediate = "mamba_d_ssm";
  Multipliers m;
  m.mamba = read_mamba2_options(c, s.hidden, keys);
  m.mamba.gated_norm = c.get_bool("mamba_rms_norm", false);
  m.mamba.norm_before_gate = c.get_bool("mamba_norm_before_gate", true);
  m.mamba.norm_groups = m.mamba.groups;
  m.mamba.conv_mlx_layout = true;
  if (c.get_bool("projectors_bias", false) != m.mamba.bias) {
    c.fail("projectors_bias", "must equal mamba_proj_bias (one switch for the mixer's in_proj and out_proj)");
  }
  m.embedding = c.get_double("embedding_multiplier", 1.0);
  m.lm_head = c.get_double("lm_head_multiplier", 1.0);
  m.key = c.get_double("key_multiplier", 1.0);
  m.attention_in = c.get_double("attention_in_multiplier", 1.0);
  m.attention_out = c.get_double("attention_out_multiplier", 1.0);
  m.ssm_in = c.get_double("ssm_in_multiplier", 1.0);
  m.ssm_out = c.get_double("ssm_out_multiplier", 1.0);
  m.mlp = multiplier_list(c, "mlp_multipliers", 2);
  m.ssm = multiplier_list(c, "ssm_multipliers", 5);
  if (s.tie_embeddings) {
    if (m.embedding == 0.0) c.fail("embedding_multiplier", "must not be 0 with tied embeddings");
    s.logits_scale = static_cast<float>(m.lm_head / m.embedding);
  }
  const nn::Mamba2Options mamba = m.mamba;
  for (const LayerSpec& b : base.layers) {
    HybridLayerSpec ls;
    ls.mixer_name = "mamba";
    ls.make_mixer = [mamba] { return std::make_unique<nn::Mamba2Mixer>(mamba); };
    ls.parallel_attention = true;
    ls.attention = b.attention;
    ls.attention.qkv_bias = ls.attention.o_bias = c.get_bool("attention_bias", false);
    ls.ffn_name = "feed_forward";
    ls.mlp = b.mlp;
    ls.mlp.bias = c.get_bool("mlp_bias", false);
    s.layers.push_back(std::move(ls));
  }
  s.sanitize = [m](WeightDict& weights) { fold_multipliers(weights, m); };
  return std::make_unique<HybridLM>(std::move(s));
}

}  // namespace lmx::models::recurrent
