// lfm2 (and lfm2_moe): LFM2's hybrid of gated short convolutions ("conv" layers) and GQA
// attention with per-head q/k RMSNorms ("full_attention" layers), each followed by a
// SwiGLU feed-forward (or, in lfm2_moe, experts); the final norm is called embedding_norm.
// Checkpoint names that differ from the shared blocks' are renamed on load (out_proj /
// q_layernorm / k_layernorm, w1 / w3 / w2).
#include <algorithm>

#include "lmx/models/llm/common.h"
#include "lmx/models/recurrent/hybrid_lm.h"
#include "lmx/models/recurrent/recurrent_models.h"
#include "lmx/nn/ssm/short_conv.h"

namespace lmx::models::recurrent {
namespace {

// Older configs list the attention layers in "full_attn_idxs" instead of "layer_types".
std::string lfm2_layer_type(const ConfigReader& c, int64_t layer) {
  const std::vector<int64_t> attn = c.get_ints("full_attn_idxs");
  return std::find(attn.begin(), attn.end(), layer) != attn.end() ? "full_attention" : "conv";
}

// LFM2's layers with a SwiGLU feed-forward of width `ff` in each; lfm2_moe swaps in its
// experts.
HybridSpec lfm2_spec(const ConfigReader& c, const std::string& type, int64_t ff) {
  // The attention / rope basics as Llama reads them, then LFM2's own layout.
  const TransformerSpec base = llm::llama_like(c, type);
  HybridSpec s = hybrid_spec(base);
  s.norm_eps = static_cast<float>(c.get_non_negative("norm_eps", 1e-5));
  s.pre_mixer_norm = "operator_norm";
  s.pre_ffn_norm = "ffn_norm";
  s.final_norm = "embedding_norm";
  s.tie_embeddings = c.get_bool("tie_word_embeddings", true);
  const int64_t kernel = c.get_int("conv_L_cache", 3);
  if (kernel <= 0) c.fail("conv_L_cache", "must be positive");
  const bool conv_bias = c.get_bool("conv_bias", false);
  const int64_t layers = static_cast<int64_t>(base.layers.size());
  const std::vector<std::string> types = llm::read_layer_types(c, layers, lfm2_layer_type);
  const int64_t hidden = s.hidden;
  for (int64_t i = 0; i < layers; ++i) {
    HybridLayerSpec ls;
    ls.ffn_name = "feed_forward";
    ls.mlp.hidden = hidden;
    ls.mlp.intermediate = ff;
    const std::string& t = types[static_cast<size_t>(i)];
    if (t == "conv") {
      ls.mixer_name = "conv";
      ls.make_mixer = [hidden, kernel, conv_bias] { return std::make_unique<nn::ShortConv>(hidden, kernel, conv_bias); };
    } else if (t == "full_attention") {
      ls.attention = base.layers[static_cast<size_t>(i)].attention;
      ls.attention.qk_norm = nn::QkNorm::per_head;
      ls.attention.norm_eps = s.norm_eps;
    } else {
      c.fail("layer_types", "has unknown layer type '" + t + "' (conv or full_attention)");
    }
    s.layers.push_back(std::move(ls));
  }
  s.renames = {{"self_attn.out_proj.", "self_attn.o_proj."},  {"self_attn.q_layernorm.", "self_attn.q_norm."},
               {"self_attn.k_layernorm.", "self_attn.k_norm."}, {"feed_forward.w1.", "feed_forward.gate_proj."},
               {"feed_forward.w3.", "feed_forward.up_proj."},  {"feed_forward.w2.", "feed_forward.down_proj."}};
  return s;
}

}  // namespace

std::unique_ptr<LanguageModel> lfm2(const ConfigReader& c) {
  int64_t ff = c.get_int("block_ff_dim", c.get_int("intermediate_size", 0));
  if (c.get_bool("block_auto_adjust_ff_dim", true)) {
    ff = 2 * ff / 3;
    if (c.has("block_ffn_dim_multiplier")) {
      ff = static_cast<int64_t>(c.get_positive("block_ffn_dim_multiplier", 1.0) * static_cast<double>(ff));
      const int64_t multiple = c.get_int("block_multiple_of", 256);
      if (multiple <= 0) c.fail("block_multiple_of", "must be positive");
      ff = multiple * ((ff + multiple - 1) / multiple);
    }
  }
  if (ff <= 0) c.fail("block_ff_dim", "must be positive");
  return std::make_unique<HybridLM>(lfm2_spec(c, "lfm2", ff));
}

// lfm2_moe: LFM2 whose feed-forwards after the first num_dense_layers are mixtures of
// experts: sigmoid router scores, a per-expert selection bias ("expert_bias", steering
// the choice only), chosen weights renormalized and scaled by routed_scaling_factor.
std::unique_ptr<LanguageModel> lfm2_moe(const ConfigReader& c) {
  const int64_t ff = c.require_int("intermediate_size");
  if (ff <= 0) c.fail("intermediate_size", "must be positive");
  HybridSpec s = lfm2_spec(c, "lfm2_moe", ff);
  const int64_t dense = c.get_int("num_dense_layers", 2);
  if (dense < 0) c.fail("num_dense_layers", "must be >= 0");
  nn::MoeOptions moe;
  moe.hidden = s.hidden;
  moe.intermediate = c.require_int("moe_intermediate_size");
  moe.experts = c.get_int("num_experts", 32);
  moe.top_k = c.get_int("num_experts_per_tok", 4);
  moe.norm_topk_prob = c.get_bool("norm_topk_prob", true);
  moe.routing.scoring = nn::MoeScoring::sigmoid;
  moe.routing.routed_scaling = static_cast<float>(c.get_positive("routed_scaling_factor", 1.0));
  if (c.get_bool("use_expert_bias", true)) moe.correction_bias = "expert_bias";
  if (moe.intermediate <= 0) c.fail("moe_intermediate_size", "must be positive");
  if (moe.experts <= 0) c.fail("num_experts", "must be positive");
  if (moe.top_k <= 0 || moe.top_k > moe.experts) c.fail("num_experts_per_tok", "must be in [1, num_experts]");
  for (size_t i = static_cast<size_t>(dense); i < s.layers.size(); ++i) {
    s.layers[i].moe = true;
    s.layers[i].moe_options = moe;
  }
  return std::make_unique<HybridLM>(std::move(s));
}

}  // namespace lmx::models::recurrent
