// granitemoehybrid: IBM Granite 4.0. Mamba2 layers ("mamba") and attention layers
// ("attention"; RoPE when position_embedding_type is "rope", else no positions), each
// followed by a mixture of experts (softmax over the chosen router logits) plus a shared
// SwiGLU MLP, or by the shared MLP alone (num_local_experts 0: the dense models). Granite's
// multipliers scale the embeddings, both residual branches, the attention scores and the
// logits. The shared MLP's fused input_linear ([gate; up]) is split on load; experts come
// as input_linear / output_linear, transformers 5's experts.gate_up_proj / down_proj or
// mlx-lm's switch_mlp, and mlx-lm calls the dense models' MLP "mlp".
#include "lmx/base/error.h"
#include "lmx/models/llm/common.h"
#include "lmx/models/recurrent/hybrid_lm.h"
#include "lmx/models/recurrent/mamba2_config.h"
#include "lmx/models/recurrent/recurrent_models.h"

namespace lmx::models::recurrent {
namespace {

// Without "layer_types" transformers makes every layer a Mamba2 layer.
std::string granite_layer_type(const ConfigReader&, int64_t) { return "mamba"; }

// "<layer>.shared_mlp.input_linear.<suffix>" [2 I, ...] -> gate_proj / up_proj halves
// (also the scales and biases of a quantized one: they split by rows the same way).
void split_shared_mlp(WeightDict& weights) {
  static const std::string kFused = "shared_mlp.input_linear.";
  WeightDict out;
  for (auto& [name, t] : weights) {
    const size_t at = name.find(kFused);
    if (at == std::string::npos) {
      out[name] = t;
      continue;
    }
    if (t.ndim() < 1 || t.dim(0) % 2 != 0) throw FormatError("'" + name + "' must have an even number of rows");
    const std::string base = name.substr(0, at) + "shared_mlp.", suffix = name.substr(at + kFused.size());
    const int64_t half = t.dim(0) / 2;
    out[base + "gate_proj." + suffix] = t.slice(0, 0, half).contiguous();
    out[base + "up_proj." + suffix] = t.slice(0, half, 2 * half).contiguous();
  }
  weights = std::move(out);
}

}  // namespace

std::unique_ptr<LanguageModel> granitemoehybrid(const ConfigReader& c) {
  const TransformerSpec base = llm::llama_like(c, "granitemoehybrid");
  HybridSpec s = hybrid_spec(base);
  s.embedding_scale = static_cast<float>(c.get_double("embedding_multiplier", 1.0));
  s.residual_scale = static_cast<float>(c.get_double("residual_multiplier", 1.0));
  s.logits_scale = static_cast<float>(1.0 / c.get_positive("logits_scaling", 1.0));
  const std::string positions = c.get_string("position_embedding_type", "nope");
  if (positions != "rope" && positions != "nope") c.fail("position_embedding_type", "must be \"rope\", \"nope\" or null");
  s.use_rope = positions == "rope";
  // The gated norm spans all channels (one norm group).
  const nn::Mamba2Options mamba = read_mamba2_options(c, s.hidden, hybrid_mamba2_keys());
  const int64_t experts = c.get_int("num_local_experts", 8);
  const int64_t shared = c.get_int("shared_intermediate_size", 1024);
  if (experts < 0) c.fail("num_local_experts", "must be >= 0");
  if (shared <= 0) c.fail("shared_intermediate_size", "must be positive");
  const int64_t layers = static_cast<int64_t>(base.layers.size());
  const std::vector<std::string> types = llm::read_layer_types(c, layers, granite_layer_type);
  for (int64_t i = 0; i < layers; ++i) {
    const LayerSpec& b = base.layers[static_cast<size_t>(i)];
    HybridLayerSpec ls;
    const std::string& t = types[static_cast<size_t>(i)];
    if (t == "mamba" || t == "linear_attention") {
      ls.mixer_name = "mamba";
      ls.make_mixer = [mamba] { return std::make_unique<nn::Mamba2Mixer>(mamba); };
    } else if (t == "attention" || t == "full_attention") {
      ls.attention = b.attention;
      ls.attention.scale = static_cast<float>(c.get_positive("attention_multiplier", 1.0));
      ls.attention.qkv_bias = ls.attention.o_bias = c.get_bool("attention_bias", false);
    } else {
      c.fail("layer_types", "has unknown layer type '" + t + "' (mamba or attention)");
    }
    ls.mlp = b.mlp;
    ls.mlp.intermediate = shared;
    if (experts == 0) {
      ls.ffn_name = "shared_mlp";
    } else {
      ls.ffn_name = "block_sparse_moe";
      ls.moe = true;
      ls.moe_options.hidden = s.hidden;
      ls.moe_options.intermediate = b.mlp.intermediate;
      ls.moe_options.experts = experts;
      ls.moe_options.top_k = c.get_int("num_experts_per_tok", 2);
      ls.moe_options.norm_topk_prob = true;  // softmax over the chosen logits
      ls.moe_options.act = b.mlp.act;
      ls.moe_options.router_name = "router";
      if (ls.moe_options.top_k <= 0 || ls.moe_options.top_k > experts) {
        c.fail("num_experts_per_tok", "must be in [1, num_local_experts]");
      }
      ls.shared_expert_intermediate = shared;
      ls.shared_expert_name = "shared_mlp";
      ls.shared_expert_gate = false;
    }
    s.layers.push_back(std::move(ls));
  }
  s.sanitize = split_shared_mlp;
  s.renames = {{"shared_mlp.output_linear.", "shared_mlp.down_proj."},
               {".mlp.", ".shared_mlp."},  // mlx-lm's dense models
               {"block_sparse_moe.input_linear.weight", "block_sparse_moe.experts.gate_up_proj"},
               {"block_sparse_moe.output_linear.weight", "block_sparse_moe.experts.down_proj"},
               {"block_sparse_moe.router.layer.", "block_sparse_moe.router."}};
  return std::make_unique<HybridLM>(std::move(s));
}

}  // namespace lmx::models::recurrent
