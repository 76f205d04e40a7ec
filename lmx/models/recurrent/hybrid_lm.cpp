#include "lmx/models/recurrent/hybrid_lm.h"

#include <algorithm>

#include "lmx/base/error.h"
#include "lmx/core/ops/elementwise.h"
#include "lmx/core/ops/shape.h"
#include "lmx/models/expert_weights.h"

namespace lmx::models::recurrent {

HybridSpec hybrid_spec(const TransformerSpec& base) {
  HybridSpec s;
  s.model_type = base.model_type;
  s.vocab = base.vocab;
  s.hidden = base.hidden;
  s.norm_eps = base.norm_eps;
  s.tie_embeddings = base.tie_embeddings;
  if (!base.ropes.empty()) s.rope = base.ropes.front();
  return s;
}

HybridLM::Layer::Layer(const HybridSpec& spec, HybridLayerSpec& ls, const nn::RotaryEmbedding* rope) {
  pre_mixer = std::make_unique<nn::RMSNorm>(spec.hidden, spec.norm_eps, spec.norm_unit_offset);
  register_module(spec.pre_mixer_norm, *pre_mixer);
  if (ls.make_mixer) {
    mixer = ls.make_mixer();
    register_module(ls.mixer_name, *mixer);
  }
  if (!ls.make_mixer || ls.parallel_attention) {
    nn::AttentionOptions ao = ls.attention;
    ao.rope = rope;
    attn = std::make_unique<nn::Attention>(ao);
    register_module(ls.make_mixer ? "self_attn" : ls.mixer_name, *attn);
  }
  if (ls.ffn_name.empty()) return;
  pre_ffn = std::make_unique<nn::RMSNorm>(spec.hidden, spec.norm_eps, spec.norm_unit_offset);
  register_module(spec.pre_ffn_norm, *pre_ffn);
  if (ls.moe) {
    moe = std::make_unique<nn::SparseMoe>(ls.moe_options);
    register_module(ls.ffn_name, *moe);
    if (ls.shared_expert_intermediate > 0) {
      nn::MlpOptions so = ls.mlp;
      so.intermediate = ls.shared_expert_intermediate;
      const std::string name = ls.shared_expert_name.empty() ? ls.ffn_name + ".shared_expert" : ls.shared_expert_name;
      shared_expert = std::make_unique<nn::Mlp>(so);
      register_module(name, *shared_expert);
      if (ls.shared_expert_gate) {
        shared_expert_gate = std::make_unique<nn::Linear>(spec.hidden, 1, false);
        register_module(name + "_gate", *shared_expert_gate);
      }
    }
  } else {
    mlp = std::make_unique<nn::Mlp>(ls.mlp);
    register_module(ls.ffn_name, *mlp);
  }
}

namespace {

// x + scale * y (Granite's residual_multiplier; 1 for the other families).
Tensor add_scaled(const Tensor& x, const Tensor& y, float scale) {
  return ops::add(x, scale == 1.0f ? y : ops::mul(y, scale));
}

}  // namespace

Tensor HybridLM::Layer::forward(const Tensor& x, nn::KVCache* cache, nn::KVCache* attn_cache,
                                const HybridSpec& spec) const {
  const Tensor n = pre_mixer->forward(x);
  Tensor h;
  if (mixer) {
    h = mixer->forward(n, nn::as_state_cache(cache, spec.model_type.c_str()));
    if (attn) h = ops::add(h, attn->forward(n, attn_cache));
  } else {
    h = attn->forward(n, cache);
  }
  Tensor r = add_scaled(x, h, spec.residual_scale);
  if (!pre_ffn) return r;
  h = pre_ffn->forward(r);
  Tensor f = moe ? moe->forward(h) : mlp->forward(h);
  if (shared_expert) {
    Tensor shared = shared_expert->forward(h);
    if (shared_expert_gate) shared = ops::mul(ops::sigmoid(shared_expert_gate->forward(h)), shared);
    f = ops::add(f, shared);
  }
  return add_scaled(r, f, spec.residual_scale);
}

HybridLM::HybridLM(HybridSpec spec) : spec_(std::move(spec)) {
  model_type_ = spec_.model_type;
  if (spec_.vocab <= 0 || spec_.hidden <= 0 || spec_.layers.empty()) {
    throw FormatError(spec_.model_type + ": vocab_size, hidden_size and num_hidden_layers must be positive");
  }
  rope_ = std::make_unique<nn::RotaryEmbedding>(spec_.rope);
  embed_ = std::make_unique<nn::Embedding>(spec_.vocab, spec_.hidden);
  body_.register_module("embed_tokens", *embed_);
  for (size_t i = 0; i < spec_.layers.size(); ++i) {
    const HybridLayerSpec& ls = spec_.layers[i];
    layers_.push_back(std::make_unique<Layer>(spec_, spec_.layers[i], spec_.use_rope ? rope_.get() : nullptr));
    body_.register_module("layers." + std::to_string(i), *layers_.back());
    first_slot_.push_back(slot_kinds_.size());
    if (ls.make_mixer) slot_kinds_.push_back(-1);
    if (!ls.make_mixer || ls.parallel_attention) slot_kinds_.push_back(ls.attention.window);
  }
  norm_ = std::make_unique<nn::RMSNorm>(spec_.hidden, spec_.norm_eps, spec_.norm_unit_offset);
  body_.register_module(spec_.final_norm, *norm_);
  register_module("model", body_);
  if (!spec_.tie_embeddings) {
    lm_head_ = std::make_unique<nn::Linear>(spec_.hidden, spec_.vocab, false);
    register_module("lm_head", *lm_head_);
  }
}

std::vector<int64_t> HybridLM::layer_windows() const {
  std::vector<int64_t> w;
  for (int64_t kind : slot_kinds_) w.push_back(std::max<int64_t>(kind, 0));
  return w;
}

std::unique_ptr<nn::KVCache> HybridLM::make_layer_cache(int64_t slot) const {
  if (slot_kinds_.at(static_cast<size_t>(slot)) >= 0) return nullptr;
  // A state slot is the first slot of its layer.
  const auto it = std::find(first_slot_.begin(), first_slot_.end(), static_cast<size_t>(slot));
  const Layer& l = *layers_.at(static_cast<size_t>(it - first_slot_.begin()));
  return std::make_unique<nn::StateCache>(l.mixer->cache_arrays());
}

void HybridLM::sanitize(WeightDict& weights) const {
  if (spec_.sanitize) spec_.sanitize(weights);
  WeightDict out;
  for (auto& [name, w] : weights) {
    if (name.find("rotary_emb.inv_freq") != std::string::npos) continue;
    std::string n = name;
    for (const auto& [from, to] : spec_.renames) {
      const size_t at = n.find(from);
      if (at != std::string::npos) n.replace(at, from.size(), to);
    }
    // Depthwise conv weights: torch's [channels, 1, kernel] or MLX's [channels, kernel, 1],
    // brought to the one the model registers.
    if (n.find("conv") != std::string::npos && n.ends_with(".weight") && w.ndim() == 3 &&
        w.dim(spec_.conv_mlx_layout ? 1 : 2) == 1 && w.dim(spec_.conv_mlx_layout ? 2 : 1) > 1) {
      w = w.transpose(1, 2).contiguous();
    }
    out[n] = w;
  }
  if (spec_.tie_embeddings) out.erase("lm_head.weight");
  weights = std::move(out);
  for (size_t l = 0; l < spec_.layers.size(); ++l) {
    const HybridLayerSpec& ls = spec_.layers[l];
    if (ls.moe) stack_expert_weights(weights, "model.layers." + std::to_string(l) + "." + ls.ffn_name, ls.moe_options);
  }
}

Tensor HybridLM::forward(const Tensor& tokens, nn::KVCacheList* caches, const ForwardOptions& options) {
  if (tokens.ndim() != 2) throw ShapeError("forward: tokens must be [batch, seq], got " + shape_str(tokens.shape()));
  if (caches && caches->size() != slot_kinds_.size()) {
    throw InvalidArgument("forward: " + std::to_string(caches->size()) + " caches for " +
                          std::to_string(slot_kinds_.size()) + " cache slots");
  }
  Tensor h = embed_->forward(tokens);
  if (spec_.embedding_scale != 1.0f) h = ops::mul(h, spec_.embedding_scale);
  if (options.hidden_states) options.hidden_states->push_back(h);
  for (size_t i = 0; i < layers_.size(); ++i) {
    const size_t slot = first_slot_[i];
    nn::KVCache* cache = caches ? (*caches)[slot].get() : nullptr;
    nn::KVCache* attn_cache = caches && layers_[i]->mixer && layers_[i]->attn ? (*caches)[slot + 1].get() : nullptr;
    h = layers_[i]->forward(h, cache, attn_cache, spec_);
    if (options.hidden_states) options.hidden_states->push_back(h);
  }
  if (options.last_position_only && h.dim(1) > 1) h = h.slice(1, h.dim(1) - 1, h.dim(1));
  h = norm_->forward(h);
  if (options.hidden_states) options.hidden_states->back() = h;  // HF reports the normed last state
  if (options.hidden_only) return h;
  Tensor logits = lm_head_ ? lm_head_->forward(h) : embed_->as_linear(h);
  if (spec_.logits_scale != 1.0f) logits = ops::mul(logits, spec_.logits_scale);
  const float cap = spec_.final_softcap;
  return cap > 0.0f ? ops::mul(ops::tanh(ops::mul(logits, 1.0 / cap)), cap) : logits;
}

}  // namespace lmx::models::recurrent
