// The Gemma models with per-layer inputs (lmx/models/llm/gemma3n.h): gemma3n_text (also
// inside a "gemma3n" folder) and, through the same model, gemma4_text (gemma4.cpp).
// Gemma 3 layers (sandwich norms, per-head q/k norms, local layers with their own rope,
// soft-capped logits) with norms that scale by w, unscaled attention and RMS-normed values,
// plus shared blocks: AltUp streams around every layer (lmx/nn/altup.h) and a LAuReL branch
// beside attention (lmx/nn/laurel.h) in Gemma 3n, the first layers' gate sparsity
// (MlpOptions::activation_sparsity) and KV sharing (the last num_kv_shared_layers layers
// attend over the keys and values of the last earlier layer of their kind: nn::SharedKV;
// they keep no cache, so num_layers() counts the layers that do). Each layer also takes a
// per-layer input: a slice of a second embedding table (embed_tokens_per_layer) added to a
// projection of the embeddings, gated in after the layer (into the other AltUp streams, or
// without AltUp into the residual).
#include "lmx/models/llm/gemma3n.h"

#include <cmath>

#include "lmx/base/error.h"
#include "lmx/core/ops/elementwise.h"
#include "lmx/models/llm/common.h"
#include "lmx/nn/laurel.h"
#include "lmx/models/expert_weights.h"

namespace lmx::models::llm {
namespace {

class PerLayerGemmaLM : public LanguageModel {
 public:
  explicit PerLayerGemmaLM(PerLayerGemmaSpec spec);
  Tensor forward(const Tensor& tokens, nn::KVCacheList* caches, const ForwardOptions& options) override;
  int64_t vocab_size() const override { return s_.base.vocab; }
  int64_t num_layers() const override { return s_.cache_layers; }
  std::vector<int64_t> layer_windows() const override {
    std::vector<int64_t> w;
    for (int64_t i = 0; i < s_.cache_layers; ++i) w.push_back(s_.base.layers[static_cast<size_t>(i)].attention.window);
    return w;
  }
  void sanitize(WeightDict& weights) const override;

 private:
  struct Layer : nn::Module {
    Layer(const PerLayerGemmaSpec& s, const LayerSpec& ls, const nn::RotaryEmbedding* rope);
    std::vector<Tensor> forward(const std::vector<Tensor>& x, const Tensor& per_layer_input, nn::KVCache* cache,
                                nn::SharedKV* shared, const PerLayerGemmaSpec& s) const;
    std::unique_ptr<nn::RMSNorm> input_norm, post_attn_norm, pre_ffn_norm, post_ffn_norm, post_per_layer_norm;
    std::unique_ptr<nn::Attention> attn;
    std::unique_ptr<nn::Mlp> mlp;
    std::unique_ptr<nn::AltUp> altup;
    std::unique_ptr<nn::Laurel> laurel;
    std::unique_ptr<nn::Linear> per_layer_gate, per_layer_projection;
    Tensor scalar;  // [1] (layer_scalar)
    // Gemma 4's MoE block: experts beside the MLP, each branch with its own norms.
    std::unique_ptr<nn::SparseMoe> moe;
    std::unique_ptr<nn::RMSNorm> post_ffn_norm_1, pre_ffn_norm_2, post_ffn_norm_2;
    Tensor router_scale;  // [hidden]
  };
  struct Body : nn::Module {
    using nn::Module::register_module;
  };
  // [B, L, layers, per_layer_dim]: the per-layer inputs of every layer for these tokens.
  Tensor per_layer_inputs(const Tensor& tokens, const Tensor& embeddings) const;

  PerLayerGemmaSpec s_;
  std::vector<std::unique_ptr<nn::RotaryEmbedding>> ropes_;
  std::unique_ptr<nn::Embedding> embed_, embed_per_layer_;
  std::unique_ptr<nn::Linear> per_layer_model_projection_;
  std::unique_ptr<nn::RMSNorm> per_layer_projection_norm_, norm_;
  std::vector<std::unique_ptr<nn::Linear>> altup_projections_, altup_unembed_projections_;
  std::vector<std::unique_ptr<Layer>> layers_;
  std::unique_ptr<nn::Linear> lm_head_;
  Body body_;
};

PerLayerGemmaLM::Layer::Layer(const PerLayerGemmaSpec& s, const LayerSpec& ls, const nn::RotaryEmbedding* rope) {
  const int64_t H = s.base.hidden;
  const float eps = s.base.norm_eps;
  auto norm = [&](const char* name, std::unique_ptr<nn::RMSNorm>& slot) {
    slot = std::make_unique<nn::RMSNorm>(H, eps);
    register_module(name, *slot);
  };
  nn::AttentionOptions ao = ls.attention;
  ao.rope = rope;
  attn = std::make_unique<nn::Attention>(ao);
  register_module("self_attn", *attn);
  mlp = std::make_unique<nn::Mlp>(ls.mlp);
  register_module("mlp", *mlp);
  norm("input_layernorm", input_norm);
  norm("post_attention_layernorm", post_attn_norm);
  norm("pre_feedforward_layernorm", pre_ffn_norm);
  norm("post_feedforward_layernorm", post_ffn_norm);
  if (s.altup.streams > 1) {
    altup = std::make_unique<nn::AltUp>(s.altup);
    register_module("altup", *altup);
  }
  if (s.laurel_rank > 0) {
    laurel = std::make_unique<nn::Laurel>(H, s.laurel_rank, eps);
    register_module("laurel", *laurel);
  }
  if (s.per_layer_dim > 0) {  // Gemma 4 31B and 26B-A4B have no per-layer inputs
    per_layer_gate = std::make_unique<nn::Linear>(H, s.per_layer_dim, false);
    per_layer_projection = std::make_unique<nn::Linear>(s.per_layer_dim, H, false);
    register_module("per_layer_input_gate", *per_layer_gate);
    register_module("per_layer_projection", *per_layer_projection);
    norm("post_per_layer_input_norm", post_per_layer_norm);
  }
  if (s.layer_scalar) register_parameter("layer_scalar", scalar, {1});
  if (s.moe) {
    moe = std::make_unique<nn::SparseMoe>(*s.moe);
    register_module("", *moe);  // its router.* and experts.* sit at the layer's top level
    register_parameter("router.scale", router_scale, {H});
    norm("post_feedforward_layernorm_1", post_ffn_norm_1);
    norm("pre_feedforward_layernorm_2", pre_ffn_norm_2);
    norm("post_feedforward_layernorm_2", post_ffn_norm_2);
  }
}

std::vector<Tensor> PerLayerGemmaLM::Layer::forward(const std::vector<Tensor>& x, const Tensor& per_layer_input,
                                              nn::KVCache* cache, nn::SharedKV* shared,
                                              const PerLayerGemmaSpec& s) const {
  const size_t a = altup ? static_cast<size_t>(s.altup.active) : 0;
  std::vector<Tensor> predictions = altup ? altup->predict(x) : x;
  const Tensor& active = predictions[a];
  const Tensor normed = input_norm->forward(active);
  Tensor h = ops::add(active, post_attn_norm->forward(attn->forward(normed, cache, nullptr, shared)));
  if (laurel) h = ops::div(ops::add(h, laurel->forward(normed)), std::sqrt(2.0));
  Tensor ffn = mlp->forward(pre_ffn_norm->forward(h));
  if (moe) {
    // The router reads the layer's input through a weightless RMS norm, times router.scale
    // and hidden^-1/2; the experts read pre_feedforward_layernorm_2's.
    const Tensor route = ops::mul(ops::rms_norm(h, router_scale, s.base.norm_eps),
                                  1.0 / std::sqrt(static_cast<double>(s.base.hidden)));
    ffn = ops::add(post_ffn_norm_1->forward(ffn),
                   post_ffn_norm_2->forward(moe->forward(pre_ffn_norm_2->forward(h), route)));
  }
  Tensor out = ops::add(h, post_ffn_norm->forward(ffn));
  auto gated = [&](const Tensor& y) {
    const Tensor g = ops::mul(nn::activate(s.act, per_layer_gate->forward(y)), per_layer_input);
    return post_per_layer_norm->forward(per_layer_projection->forward(g));
  };
  if (!altup) {
    if (per_layer_gate) out = ops::add(out, gated(out));
    return {scalar.defined() ? ops::mul(out, scalar) : out};
  }
  std::vector<Tensor> corrected = altup->correct(predictions, out);
  const Tensor first = gated(s.altup_correct_scale ? altup->scale_output(corrected[a]) : corrected[a]);
  for (size_t j = 1; j < corrected.size(); ++j) corrected[j] = ops::add(corrected[j], first);
  return corrected;
}

PerLayerGemmaLM::PerLayerGemmaLM(PerLayerGemmaSpec spec) : s_(std::move(spec)) {
  model_type_ = s_.base.model_type;
  const TransformerSpec& b = s_.base;
  const int64_t layers = static_cast<int64_t>(b.layers.size());
  for (const auto& rc : b.ropes) ropes_.push_back(std::make_unique<nn::RotaryEmbedding>(rc));
  embed_ = std::make_unique<nn::Embedding>(b.vocab, b.hidden);
  body_.register_module("embed_tokens", *embed_);
  if (s_.per_layer_dim > 0) {
    embed_per_layer_ = std::make_unique<nn::Embedding>(s_.per_layer_vocab, layers * s_.per_layer_dim);
    per_layer_model_projection_ = std::make_unique<nn::Linear>(b.hidden, layers * s_.per_layer_dim, false);
    per_layer_projection_norm_ = std::make_unique<nn::RMSNorm>(s_.per_layer_dim, b.norm_eps);
    body_.register_module("embed_tokens_per_layer", *embed_per_layer_);
    body_.register_module("per_layer_model_projection", *per_layer_model_projection_);
    body_.register_module("per_layer_projection_norm", *per_layer_projection_norm_);
  }
  for (int64_t i = 1; i < s_.altup.streams; ++i) {
    altup_projections_.push_back(std::make_unique<nn::Linear>(b.hidden, b.hidden, false));
    altup_unembed_projections_.push_back(std::make_unique<nn::Linear>(b.hidden, b.hidden, false));
    body_.register_module("altup_projections." + std::to_string(i - 1), *altup_projections_.back());
    body_.register_module("altup_unembed_projections." + std::to_string(i - 1), *altup_unembed_projections_.back());
  }
  for (int64_t i = 0; i < layers; ++i) {
    const LayerSpec& ls = b.layers[static_cast<size_t>(i)];
    layers_.push_back(std::make_unique<Layer>(s_, ls, ropes_.at(static_cast<size_t>(s_.rope_of[static_cast<size_t>(i)])).get()));
    body_.register_module("layers." + std::to_string(i), *layers_.back());
  }
  norm_ = std::make_unique<nn::RMSNorm>(b.hidden, b.norm_eps);
  body_.register_module("norm", *norm_);
  register_module("model", body_);
  if (!b.tie_embeddings) {
    lm_head_ = std::make_unique<nn::Linear>(b.hidden, b.vocab, false);
    register_module("lm_head", *lm_head_);
  }
}

void PerLayerGemmaLM::sanitize(WeightDict& weights) const {
  for (auto it = weights.begin(); it != weights.end();) {
    bool drop = it->first.find("rotary_emb.inv_freq") != std::string::npos;
    // Checkpoints may still hold the unused k / v weights of the layers that share them.
    for (size_t i = 0; i < layers_.size() && !drop; ++i) {
      if (s_.kv_source[i] < 0) continue;
      const std::string p = "model.layers." + std::to_string(i) + ".self_attn.";
      for (const char* part : {"k_proj.", "v_proj.", "k_norm.", "v_norm."}) drop = drop || it->first.starts_with(p + part);
    }
    it = drop ? weights.erase(it) : std::next(it);
  }
  if (s_.base.tie_embeddings) weights.erase("lm_head.weight");
  if (s_.moe) {
    for (size_t i = 0; i < layers_.size(); ++i) stack_expert_weights(weights, "model.layers." + std::to_string(i), *s_.moe);
  }
}

Tensor PerLayerGemmaLM::per_layer_inputs(const Tensor& tokens, const Tensor& embeddings) const {
  const int64_t B = tokens.dim(0), L = tokens.dim(1), layers = static_cast<int64_t>(layers_.size());
  const int64_t P = s_.per_layer_dim;
  // Ids past the per-layer table (Gemma 3n's image / audio tokens) take row 0, as
  // transformers' Gemma3nModel does.
  std::vector<int32_t> ids;
  for (int64_t id : tokens.to_int_vector()) {
    ids.push_back(id >= 0 && id < s_.per_layer_vocab ? static_cast<int32_t>(id) : 0);
  }
  Tensor own = ops::mul(embed_per_layer_->forward(Tensor::from_vector(ids, {B, L})), std::sqrt(static_cast<double>(P)));
  Tensor projected = ops::mul(per_layer_model_projection_->forward(embeddings),
                              1.0 / std::sqrt(static_cast<double>(s_.base.hidden)));
  projected = per_layer_projection_norm_->forward(projected.reshape({B, L, layers, P}));
  return ops::mul(ops::add(projected, own.reshape({B, L, layers, P})), 1.0 / std::sqrt(2.0));
}

Tensor PerLayerGemmaLM::forward(const Tensor& tokens, nn::KVCacheList* caches, const ForwardOptions& options) {
  if (tokens.ndim() != 2) throw ShapeError("forward: tokens must be [batch, seq], got " + shape_str(tokens.shape()));
  if (caches && static_cast<int64_t>(caches->size()) != s_.cache_layers) {
    throw InvalidArgument("forward: " + std::to_string(caches->size()) + " caches for " +
                          std::to_string(s_.cache_layers) + " cached layers");
  }
  if (options.attention) throw Unsupported(model_type_ + ": takes no attention context");
  Tensor h = ops::mul(embed_->forward(tokens), std::sqrt(static_cast<double>(s_.base.hidden)));
  if (options.edit_embeddings) h = options.edit_embeddings(h);
  const Tensor per_layer = s_.per_layer_dim > 0 ? per_layer_inputs(tokens, h) : Tensor();
  std::vector<Tensor> streams = altup_projections_.empty() ? std::vector<Tensor>{h} : nn::altup_expand(h, altup_projections_);
  const size_t a = s_.altup.streams > 1 ? static_cast<size_t>(s_.altup.active) : 0;
  if (options.hidden_states) options.hidden_states->push_back(streams[a]);
  std::vector<nn::SharedKV> shared(layers_.size());
  for (size_t i = 0; i < layers_.size(); ++i) {
    const int64_t source = s_.kv_source[i];
    nn::KVCache* cache = caches && source < 0 ? (*caches)[i].get() : nullptr;
    nn::SharedKV* kv = &shared[source < 0 ? i : static_cast<size_t>(source)];
    const Tensor input = per_layer.defined() ? per_layer.select(2, static_cast<int64_t>(i)) : Tensor();
    streams = layers_[i]->forward(streams, input, cache, kv, s_);
    if (options.hidden_states) options.hidden_states->push_back(streams[a]);
  }
  if (options.last_position_only && h.dim(1) > 1) {
    for (auto& st : streams) st = st.slice(1, st.dim(1) - 1, st.dim(1));
  }
  if (streams.size() == 1) {
    h = norm_->forward(streams[0]);
    if (options.hidden_states) options.hidden_states->back() = h;  // HF reports Gemma 4's normed last state
  } else {
    h = norm_->forward(nn::altup_collapse(streams, altup_unembed_projections_));  // Gemma 3n's last: the active stream
  }
  if (options.hidden_only) return h;
  Tensor logits = lm_head_ ? lm_head_->forward(h) : embed_->as_linear(h);
  const float cap = s_.base.final_softcap;
  return cap > 0.0f ? ops::mul(ops::tanh(ops::div(logits, cap)), cap) : logits;
}

std::string gemma3n_layer_type(const ConfigReader&, int64_t i) {
  return (i + 1) % 5 == 0 ? "full_attention" : "sliding_attention";
}

// A per-layer list (or one value for every layer) of config key `key`.
std::vector<double> per_layer_values(const ConfigReader& c, const std::string& key, size_t layers, double fallback) {
  if (!c.has(key)) return std::vector<double>(layers, fallback);
  if (!c.json().at(key).is_array()) return std::vector<double>(layers, c.get_double(key, fallback));
  std::vector<double> v = c.get_doubles(key);
  if (v.size() != layers) c.fail(key, "has " + std::to_string(v.size()) + " entries for " + std::to_string(layers) + " layers");
  return v;
}

}  // namespace

PerLayerGemmaSpec per_layer_gemma_spec(const ConfigReader& c, const std::string& model_type) {
  PerLayerGemmaSpec s;
  s.base = llama_like(c, model_type);
  TransformerSpec& b = s.base;
  const size_t layers = b.layers.size();
  b.tie_embeddings = c.get_bool("tie_word_embeddings", true);
  b.final_softcap = static_cast<float>(c.get_non_negative("final_logit_softcapping", 0.0));
  s.act = nn::parse_activation(c.get_string("hidden_activation", "gelu_pytorch_tanh"));
  s.per_layer_vocab = c.get_int("vocab_size_per_layer_input", b.vocab);
  s.per_layer_dim = c.get_int("hidden_size_per_layer_input", 256);
  if (s.per_layer_dim < 0) c.fail("hidden_size_per_layer_input", "must be >= 0 (0: no per-layer inputs)");
  if (s.per_layer_dim > 0 && s.per_layer_vocab <= 0) c.fail("vocab_size_per_layer_input", "must be positive");
  s.altup = {b.hidden, 1, 0, b.norm_eps};
  s.types = read_layer_types(c, static_cast<int64_t>(layers), gemma3n_layer_type);
  const int64_t window = c.get_int("sliding_window", 512);
  if (window <= 0) c.fail("sliding_window", "must be positive");
  const int64_t shared = c.get_int("num_kv_shared_layers", 0);
  if (shared < 0 || shared >= static_cast<int64_t>(layers)) c.fail("num_kv_shared_layers", "must be in [0, layers)");
  s.cache_layers = static_cast<int64_t>(layers) - shared;
  for (size_t i = 0; i < layers; ++i) {
    LayerSpec& ls = b.layers[i];
    const bool sliding = s.types[i] == "sliding_attention";
    if (!sliding && s.types[i] != "full_attention") c.fail("layer_types", "has unknown type '" + s.types[i] + "'");
    s.rope_of.push_back(sliding ? 1 : 0);
    ls.attention.scale = 1.0f;
    ls.attention.qk_norm = nn::QkNorm::per_head;
    ls.attention.v_norm = true;
    ls.attention.window = sliding ? window : 0;
    ls.mlp.act = s.act;
    int64_t source = -1;  // the last earlier layer of the same kind before the shared ones
    if (static_cast<int64_t>(i) >= s.cache_layers) {
      for (int64_t j = s.cache_layers - 1; j >= 0 && source < 0; --j) source = s.types[static_cast<size_t>(j)] == s.types[i] ? j : -1;
      if (source < 0) c.fail("num_kv_shared_layers", "leaves a shared " + s.types[i] + " layer with no earlier layer of its kind");
      ls.attention.kv_shared = true;
    }
    s.kv_source.push_back(source);
  }
  return s;
}

std::unique_ptr<LanguageModel> per_layer_gemma(PerLayerGemmaSpec spec) { return std::make_unique<PerLayerGemmaLM>(std::move(spec)); }

std::unique_ptr<LanguageModel> gemma3n_text(const ConfigReader& c) {
  // intermediate_size may be per layer: the base reads the first, the layers their own.
  nlohmann::json first = c.json();
  if (first.contains("intermediate_size") && first["intermediate_size"].is_array() &&
      !first["intermediate_size"].empty()) {
    first["intermediate_size"] = first["intermediate_size"][0];
  }
  PerLayerGemmaSpec s = per_layer_gemma_spec(ConfigReader(first, c.source()), "gemma3n_text");
  TransformerSpec& b = s.base;
  const size_t layers = b.layers.size();
  s.laurel_rank = c.get_int("laurel_rank", 64);
  s.altup = {b.hidden, c.get_int("altup_num_inputs", 4), c.get_int("altup_active_idx", 0), b.norm_eps};
  s.altup_correct_scale = c.get_bool("altup_correct_scale", true);
  if (s.laurel_rank <= 0) c.fail("laurel_rank", "must be positive");
  if (s.altup.streams < 2) c.fail("altup_num_inputs", "must be at least 2");
  if (s.per_layer_dim == 0) c.fail("hidden_size_per_layer_input", "must be positive for gemma3n");
  const std::vector<double> widths = per_layer_values(c, "intermediate_size", layers, 0.0);
  const std::vector<double> sparsity = per_layer_values(c, "activation_sparsity_pattern", layers, 0.0);
  // Two ropes: [full attention, sliding attention] (v5 rope_parameters by layer type).
  const int64_t head_dim = b.layers[0].attention.head_dim;
  b.ropes = {read_rope(c, head_dim, "full_attention"), read_rope(c, head_dim, "sliding_attention")};
  if (!c.has("rope_parameters")) {
    b.ropes[0].theta = c.get_positive("rope_theta", 1000000.0);
    b.ropes[1].theta = c.get_positive("rope_local_base_freq", 10000.0);
  }
  for (size_t i = 0; i < layers; ++i) {
    LayerSpec& ls = b.layers[i];
    ls.mlp.intermediate = static_cast<int64_t>(widths[i]);
    if (ls.mlp.intermediate <= 0) c.fail("intermediate_size", "must be positive");
    ls.mlp.activation_sparsity = static_cast<float>(sparsity[i]);
  }
  return per_layer_gemma(std::move(s));
}

}  // namespace lmx::models::llm
