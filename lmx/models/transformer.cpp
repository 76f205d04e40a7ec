#include "lmx/models/transformer.h"

#include <algorithm>
#include <cmath>
#include <regex>

#include "lmx/base/error.h"
#include "lmx/core/communicator.h"
#include "lmx/core/ops/elementwise.h"
#include "lmx/core/ops/shape.h"
#include "lmx/models/expert_weights.h"
#include "lmx/models/latent_weights.h"

namespace lmx::models {

void LanguageModel::prepare_for_inference() { prepare_module_for_inference(*this); }

void prepare_module_for_inference(nn::Module& module) {
  module.for_each_module([](const std::string&, nn::Module& m) {
    if (auto* l = dynamic_cast<nn::Linear*>(&m)) l->prepare();
    if (auto* e = dynamic_cast<nn::Embedding*>(&m)) e->prepare();
    if (auto* s = dynamic_cast<nn::SwitchLinear*>(&m)) s->prepare();
  });
}

TransformerLM::Layer::Layer(const TransformerSpec& spec, const LayerSpec& ls,
                            const nn::RotaryEmbedding* rope) {
  auto make_norm = [&](const std::string& name, std::unique_ptr<nn::Norm>& slot) {
    if (name.empty()) return;
    slot = std::make_unique<nn::Norm>(spec.norm_kind, spec.hidden, spec.norm_eps, spec.norm_unit_offset,
                                      spec.norm_bias, spec.norm_weight);
    register_module(name, *slot);
  };
  make_norm(spec.pre_attn_norm, pre_attn);
  make_norm(spec.post_attn_norm, post_attn);
  make_norm(spec.pre_ffn_norm, pre_ffn);
  make_norm(spec.post_ffn_norm, post_ffn);
  if (ls.mla) {
    nn::MlaOptions mo = ls.mla_options;
    mo.rope = rope;
    mla = std::make_unique<nn::MultiLatentAttention>(mo);
    register_module("self_attn", *mla);
  } else {
    nn::AttentionOptions ao = ls.attention;
    ao.rope = rope;
    attn = std::make_unique<nn::Attention>(ao);
    register_module(spec.attn_name, *attn);
  }
  if (ls.moe) {
    moe = std::make_unique<nn::SparseMoe>(ls.moe_options);
    register_module(spec.mlp_name, *moe);
  } else {
    mlp = std::make_unique<nn::Mlp>(ls.mlp);
    register_module(spec.mlp_name, *mlp);
  }
}

Tensor TransformerLM::Layer::forward(const Tensor& x_in, const Tensor& x_delta, nn::KVCache* cache,
                                     const TransformerSpec& spec, const nn::AttentionContext* ctx,
                                     Tensor* delta, Communicator* comm) const {
  // The norm in front of attention and the MLP, with the residual add before it (one fused
  // op: Norm::forward_sum, the same f32 sums as ops::add's), not yet run: a decode row's
  // runs inside the first projections where the backend can (ops::LinearInput); *sum is
  // written when the input is read.
  auto deferred_norm = [](const nn::Norm* norm, const Tensor& a, const Tensor& b, Tensor* sum) -> ops::LinearInput {
    if (norm) return norm->deferred(a, b, sum);
    if (!b.defined()) return a;
    *sum = ops::add(a, b);
    return *sum;
  };
  auto reduce = [comm](const Tensor& t) { return comm ? comm->all_reduce_sum(t) : t; };
  Tensor x = x_in;
  const ops::LinearInput attn_in = deferred_norm(pre_attn.get(), x_in, x_delta, &x);
  if (spec.parallel_residual) {
    const Tensor& h = attn_in.value();
    Tensor m = pre_ffn ? pre_ffn->forward(x) : h;
    m = reduce(moe ? moe->forward(m) : mlp->forward(m));
    Tensor out = ops::add(x, reduce(attn->forward(h, cache, ctx)));
    if (!delta) return ops::add(out, m);
    *delta = m;
    return out;
  }
  if (mla && ctx) throw Unsupported(spec.model_type + ": latent attention takes no attention context");
  Tensor h = reduce(mla ? mla->forward(attn_in.value(), cache) : attn->forward(attn_in, cache, ctx));
  if (post_attn) h = post_attn->forward(h);
  if (spec.residual_multiplier != 1.0f) h = ops::mul(h, spec.residual_multiplier);
  Tensor r;
  const ops::LinearInput mlp_in = deferred_norm(pre_ffn.get(), x, h, &r);
  h = reduce(moe ? moe->forward(mlp_in.value()) : mlp->forward(mlp_in));
  if (post_ffn) h = post_ffn->forward(h);
  if (spec.residual_multiplier != 1.0f) h = ops::mul(h, spec.residual_multiplier);
  if (!delta) return ops::add(r, h);
  *delta = h;
  return r;
}

TransformerLM::Body::Body(TransformerLM& owner) {
  const TransformerSpec& s = owner.spec_;
  register_module(s.embed_name, *owner.embed_);
  if (owner.positions_) register_module(s.positions_name, *owner.positions_);
  for (size_t i = 0; i < owner.layers_.size(); ++i) {
    register_module(s.layers_name + "." + std::to_string(i), *owner.layers_[i]);
  }
  register_module(s.final_norm_name, *owner.norm_);
}

TransformerLM::TransformerLM(TransformerSpec spec) : spec_(std::move(spec)) {
  model_type_ = spec_.model_type;
  if (spec_.vocab <= 0 || spec_.hidden <= 0 || spec_.layers.empty()) {
    throw FormatError(spec_.model_type + ": vocab_size, hidden_size and num_hidden_layers must be positive");
  }
  for (const auto& rc : spec_.ropes) ropes_.push_back(std::make_unique<nn::RotaryEmbedding>(rc));
  embed_ = std::make_unique<nn::Embedding>(spec_.vocab, spec_.hidden);
  if (spec_.positions > 0) positions_ = std::make_unique<nn::Embedding>(spec_.positions, spec_.hidden);
  for (const auto& ls : spec_.layers) {
    const nn::RotaryEmbedding* rope = nullptr;
    if (ls.rope_index >= 0) {
      if (ls.rope_index >= static_cast<int>(ropes_.size())) {
        throw InternalError("transformer: layer refers to a missing rope");
      }
      rope = ropes_[static_cast<size_t>(ls.rope_index)].get();
    }
    layers_.push_back(std::make_unique<Layer>(spec_, ls, rope));
  }
  norm_ = std::make_unique<nn::Norm>(spec_.norm_kind, spec_.hidden, spec_.norm_eps, spec_.norm_unit_offset,
                                     spec_.norm_bias, spec_.norm_weight);
  body_ = std::make_unique<Body>(*this);
  register_module(spec_.body_name, *body_);
  if (!spec_.tie_embeddings) {
    lm_head_ = std::make_unique<nn::Linear>(spec_.hidden, spec_.vocab, spec_.lm_head_bias);
    register_module(spec_.lm_head_name, *lm_head_);
  }
}

void TransformerLM::set_communicator(Communicator* comm) {
  if (comm && (comm->world() != spec_.shard.world || comm->rank() != spec_.shard.rank)) {
    throw InvalidArgument(spec_.model_type + ": a shard for rank " + std::to_string(spec_.shard.rank) + " of " +
                          std::to_string(spec_.shard.world) + " given the communicator of rank " +
                          std::to_string(comm->rank()) + " of " + std::to_string(comm->world()));
  }
  comm_ = comm;
}

Tensor TransformerLM::embed_tokens(const Tensor& tokens) const {
  if (!comm_ || !spec_.shard.vocab_parallel) return embed_->forward(tokens);
  const int64_t begin = spec_.shard.vocab_begin, n = spec_.vocab;
  // Ids on the host are checked here. Ids already on the device (a decode step captured as a
  // device graph: lmx/core/step_values.h) were checked before they went there and are not
  // read back (that would wait for the device): the rows and the mask are tensor ops.
  if (tokens.device().is_cpu()) {
    const std::vector<int64_t> ids = tokens.to_int_vector();
    for (size_t i = 0; i < ids.size(); ++i) {
      if (ids[i] < 0 || ids[i] >= spec_.shard.full_vocab) {
        throw InvalidArgument("embedding: token id " + std::to_string(ids[i]) + " at position " + std::to_string(i) +
                              " is out of range [0, " + std::to_string(spec_.shard.full_vocab) + ")");
      }
    }
  }
  const Tensor local = ops::sub(tokens.to(Dtype::i64), static_cast<double>(begin));
  const Tensor row = ops::clamp(local, 0.0, static_cast<double>(n - 1));  // another rank's token: masked below
  Shape mask_shape = tokens.shape();
  mask_shape.push_back(1);
  const Tensor mine = ops::equal(row, local).to(Dtype::f32).reshape(mask_shape);  // 1 where the row is this rank's
  Tensor rows = embed_->forward(row);
  Tensor h = ops::mul(rows, mine.to(rows.device()));
  return comm_->all_reduce_sum(h);
}

bool TransformerLM::positions_depend_on_length() const {
  for (const auto& rc : spec_.ropes)
    if (rc.type == "dynamic" || rc.type == "longrope") return true;  // RotaryEmbedding::inv_freq(seq_len)
  return false;
}

std::vector<int64_t> TransformerLM::layer_windows() const {
  std::vector<int64_t> w;
  for (const auto& ls : spec_.layers) w.push_back(ls.attention.window);
  return w;
}

void TransformerLM::sanitize(WeightDict& weights) const {
  if (spec_.sanitize) spec_.sanitize(weights, spec_);
  if (!spec_.renames.empty()) {
    WeightDict renamed;
    for (auto& [name, t] : weights) {
      std::string n = name;
      for (const auto& [from, to] : spec_.renames) {
        const size_t at = n.find(from);
        if (at != std::string::npos) n.replace(at, from.size(), to);
      }
      renamed[n] = t;
    }
    weights = std::move(renamed);
  }
  // Buffers some exporters save; never parameters.
  for (auto it = weights.begin(); it != weights.end();) {
    if (it->first.find("rotary_emb.inv_freq") != std::string::npos) {
      it = weights.erase(it);
    } else {
      ++it;
    }
  }
  if (spec_.tie_embeddings) weights.erase(spec_.lm_head_name + ".weight");
  for (size_t l = 0; l < spec_.layers.size(); ++l) {
    const auto& ls = spec_.layers[l];
    const std::string layer = spec_.body_name + "." + spec_.layers_name + "." + std::to_string(l) + ".";
    if (ls.moe) stack_expert_weights(weights, layer + spec_.mlp_name, ls.moe_options);
    if (ls.mla) merge_latent_projections(weights, layer + "self_attn", ls.mla_options);
  }
}

// Rows of the learned position table for tokens [B, L]: positions continue from the
// cache's offset, less each row's left padding.
Tensor TransformerLM::position_embeddings(const Tensor& tokens, const nn::KVCacheList* caches) const {
  const int64_t B = tokens.dim(0), L = tokens.dim(1);
  const nn::KVCache* cache = caches && !caches->empty() ? (*caches)[0].get() : nullptr;
  const int64_t offset = cache ? cache->offset() : 0;
  const std::vector<int64_t> pad = cache ? cache->left_padding() : std::vector<int64_t>{};
  std::vector<int32_t> ids(static_cast<size_t>(B * L));
  for (int64_t b = 0; b < B; ++b) {
    const int64_t start = offset - (pad.empty() ? 0 : pad[static_cast<size_t>(b)]);
    for (int64_t s = 0; s < L; ++s) {
      const int64_t p = std::max<int64_t>(0, start + s);  // left padding: never read
      if (p >= spec_.positions) {
        throw InvalidArgument(spec_.model_type + ": position " + std::to_string(p) + " is past the model's " +
                              std::to_string(spec_.positions) + " learned positions");
      }
      ids[static_cast<size_t>(b * L + s)] = static_cast<int32_t>(p);
    }
  }
  return positions_->forward(Tensor::from_vector(ids, {B, L}));
}

Tensor TransformerLM::forward(const Tensor& tokens, nn::KVCacheList* caches, const ForwardOptions& options) {
  if (tokens.ndim() != 2) {
    throw ShapeError("forward: tokens must be [batch, seq], got " + shape_str(tokens.shape()));
  }
  if (caches && caches->size() != layers_.size()) {
    throw InvalidArgument("forward: " + std::to_string(caches->size()) + " caches for " +
                          std::to_string(layers_.size()) + " layers");
  }
  if (spec_.shard.world > 1 && !comm_) {
    throw InvalidArgument(spec_.model_type + ": rank " + std::to_string(spec_.shard.rank) + " of a tensor-parallel "
                          "group has no communicator");
  }
  Tensor h = embed_tokens(tokens);  // [B, L, hidden] f32
  if (spec_.embed_scale != 1.0f) h = ops::mul(h, spec_.embed_scale);
  if (positions_) h = ops::add(h, position_embeddings(tokens, caches));
  if (spec_.norm_embeddings) h = norm_->forward(h);
  if (options.edit_embeddings) h = options.edit_embeddings(h);
  if (options.hidden_states) options.hidden_states->push_back(h);
  // Unless a caller looks at each layer's output, a layer's last residual add is left to
  // the next layer's first norm (or the final norm): one fused op instead of two.
  const bool fuse = !options.hidden_states && !options.edit_layer_output;
  Tensor delta;  // the residual stream is h + delta
  for (size_t i = 0; i < layers_.size(); ++i) {
    nn::KVCache* cache = caches ? (*caches)[i].get() : nullptr;
    const Tensor in_delta = std::move(delta);
    delta = Tensor();
    h = layers_[i]->forward(h, in_delta, cache, spec_, options.attention, fuse ? &delta : nullptr, comm_);
    if (options.hidden_states) options.hidden_states->push_back(h);  // before the edit, as HF reports it
    if (options.edit_layer_output) h = options.edit_layer_output(i, h);
  }
  if (options.last_position_only && h.dim(1) > 1) {
    h = h.slice(1, h.dim(1) - 1, h.dim(1));
    if (delta.defined()) delta = delta.slice(1, delta.dim(1) - 1, delta.dim(1));
  }
  if (delta.defined()) {
    Tensor sum;
    h = norm_->forward_sum(h, delta, &sum);
  } else {
    h = norm_->forward(h);
  }
  if (options.hidden_states) options.hidden_states->back() = h;  // HF reports the normed last state
  if (options.hidden_only) return h;
  Tensor logits = lm_head_ ? lm_head_->forward(h) : embed_->as_linear(h);
  if (comm_ && spec_.shard.vocab_parallel) logits = comm_->all_gather_last(logits);
  if (spec_.logits_divisor != 1.0f) logits = ops::div(logits, spec_.logits_divisor);
  if (spec_.final_softcap > 0.0f) {
    logits = ops::mul(ops::tanh(ops::div(logits, spec_.final_softcap)), spec_.final_softcap);
  }
  return logits;
}

}  // namespace lmx::models
