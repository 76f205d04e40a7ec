#include "lmx/models/recurrent/hybrid_lm.h"

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
  } else {
    nn::AttentionOptions ao = ls.attention;
    ao.rope = rope;
    attn = std::make_unique<nn::Attention>(ao);
    register_module(ls.mixer_name, *attn);
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
      shared_expert = std::make_unique<nn::Mlp>(so);
      shared_expert_gate = std::make_unique<nn::Linear>(spec.hidden, 1, false);
      register_module(ls.ffn_name + ".shared_expert", *shared_expert);
      register_module(ls.ffn_name + ".shared_expert_gate", *shared_expert_gate);
    }
  } else {
    mlp = std::make_unique<nn::Mlp>(ls.mlp);
    register_module(ls.ffn_name, *mlp);
  }
}

Tensor HybridLM::Layer::forward(const Tensor& x, nn::KVCache* cache, const std::string& model_type) const {
  Tensor h = pre_mixer->forward(x);
  h = mixer ? mixer->forward(h, nn::as_state_cache(cache, model_type.c_str())) : attn->forward(h, cache);
  Tensor r = ops::add(x, h);
  if (!pre_ffn) return r;
  h = pre_ffn->forward(r);
  Tensor f = moe ? moe->forward(h) : mlp->forward(h);
  if (shared_expert) {
    f = ops::add(f, ops::mul(ops::sigmoid(shared_expert_gate->forward(h)), shared_expert->forward(h)));
  }
  return ops::add(r, f);
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
    layers_.push_back(std::make_unique<Layer>(spec_, spec_.layers[i], spec_.use_rope ? rope_.get() : nullptr));
    body_.register_module("layers." + std::to_string(i), *layers_.back());
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
  for (const auto& ls : spec_.layers) w.push_back(ls.make_mixer ? 0 : ls.attention.window);
  return w;
}

std::unique_ptr<nn::KVCache> HybridLM::make_layer_cache(int64_t layer) const {
  const Layer& l = *layers_.at(static_cast<size_t>(layer));
  if (!l.mixer) return nullptr;
  return std::make_unique<nn::StateCache>(l.mixer->cache_arrays());
}

void HybridLM::sanitize(WeightDict& weights) const {
  WeightDict out;
  for (auto& [name, w] : weights) {
    if (name.find("rotary_emb.inv_freq") != std::string::npos) continue;
    std::string n = name;
    for (const auto& [from, to] : spec_.renames) {
      const size_t at = n.find(from);
      if (at != std::string::npos) n.replace(at, from.size(), to);
    }
    // MLX exports store depthwise conv weights as [channels, kernel, 1].
    if (n.find("conv") != std::string::npos && n.size() > 7 && n.compare(n.size() - 7, 7, ".weight") == 0 &&
        w.ndim() == 3 && w.dim(2) == 1 && w.dim(1) > 1) {
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
  if (caches && caches->size() != layers_.size()) {
    throw InvalidArgument("forward: " + std::to_string(caches->size()) + " caches for " +
                          std::to_string(layers_.size()) + " layers");
  }
  Tensor h = embed_->forward(tokens);
  if (options.hidden_states) options.hidden_states->push_back(h);
  for (size_t i = 0; i < layers_.size(); ++i) {
    h = layers_[i]->forward(h, caches ? (*caches)[i].get() : nullptr, spec_.model_type);
    if (options.hidden_states) options.hidden_states->push_back(h);
  }
  if (options.last_position_only && h.dim(1) > 1) h = h.slice(1, h.dim(1) - 1, h.dim(1));
  h = norm_->forward(h);
  if (options.hidden_states) options.hidden_states->back() = h;  // HF reports the normed last state
  return lm_head_ ? lm_head_->forward(h) : embed_->as_linear(h);
}

}  // namespace lmx::models::recurrent
