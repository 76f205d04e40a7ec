#include "lmx/train/differentiable_transformer.h"

#include <cmath>

#include "lmx/base/error.h"
#include "lmx/core/autograd/functions.h"
#include "lmx/core/ops/elementwise.h"

namespace lmx::train {

using autograd::Var;

namespace {

void require(bool ok, const models::TransformerSpec& spec, const std::string& what) {
  if (!ok) throw Unsupported("training " + spec.model_type + ": " + what + " is not supported yet");
}

Var apply_weight(const nn::WeightMatrix& w, const Var& x, const Tensor& bias) {
  if (w.quantized()) return autograd::quantized_linear(x, w.quant(), bias);
  return autograd::linear(x, Var(w.dense()), Var(bias));
}

// The trainable copy of a parameter (full fine-tuning), or the frozen one.
Var trained_or(const LoraAdapters* lora, const std::string& name, const Tensor& frozen) {
  if (lora) {
    auto it = lora->weights.find(name);
    if (it != lora->weights.end()) return it->second;
  }
  return Var(frozen);
}

}  // namespace

DifferentiableTransformer::DifferentiableTransformer(models::TransformerLM& model)
    : model_(model), linears_(linear_layers(model)) {
  const auto& spec = model.spec();
  require(spec.norm_kind == nn::NormKind::rms, spec, "LayerNorm");
  require(spec.final_softcap == 0.0f, spec, "final logit soft-capping");
  require(!spec.parallel_residual, spec, "a parallel residual");
  require(spec.positions == 0, spec, "learned position embeddings");
  require(spec.norm_weight && !spec.norm_embeddings && !spec.lm_head_bias, spec, "this norm / head layout");
  require(spec.body_name == "model" && spec.attn_name == "self_attn" && spec.layers_name == "layers" &&
              spec.embed_name == "embed_tokens" && spec.final_norm_name == "norm" && spec.lm_head_name == "lm_head",
          spec, "these checkpoint names");
  for (const auto& ls : spec.layers) {
    require(!ls.moe, spec, "a mixture-of-experts block");
    require(!ls.attention.fused_qkv, spec, "a fused qkv projection");
    require(ls.attention.window == 0, spec, "sliding-window attention");
    require(ls.attention.softcap == 0.0f, spec, "attention soft-capping");
    const auto qk = ls.attention.qk_norm;
    require(qk == nn::QkNorm::none || qk == nn::QkNorm::per_head || qk == nn::QkNorm::full, spec, "this q/k norm");
    require(!ls.attention.qk_norm_after_rope && !ls.attention.sub_norm && ls.attention.o_name == "o_proj", spec,
            "this attention layout");
    require(ls.mlp.kind == nn::MlpKind::gated && ls.mlp.act == nn::Activation::silu, spec,
            "an MLP other than SwiGLU");
    require(ls.mlp.sub_norm_eps == 0.0f, spec, "an MLP sub-norm");
  }
  for (auto& slot : model.parameters()) params_[slot.name] = slot.tensor;
  for (const auto& rc : spec.ropes) require(!rc.inverted, spec, "an inverted rotary embedding");
  for (const auto& rc : spec.ropes) ropes_.push_back(std::make_unique<nn::RotaryEmbedding>(rc));
}

Var DifferentiableTransformer::project(const std::string& path, const Var& x, const LoraAdapters* lora,
                                       ops::RandomGenerator* rng) const {
  auto it = linears_.find(path);
  if (it == linears_.end()) throw InternalError("training: no Linear '" + path + "'");
  const nn::Linear& l = *it->second;
  if (lora && !lora->weights.empty() && !l.weight().quantized()) {
    return autograd::linear(x, trained_or(lora, path + ".weight", l.weight().dense()),
                            trained_or(lora, path + ".bias", l.bias()));
  }
  auto ad = lora ? lora->layers.find(path) : std::map<std::string, LoraPair>::const_iterator();
  if (!lora || ad == lora->layers.end()) return apply_weight(l.weight(), x, l.bias());
  const LoraPair& p = ad->second;
  const double scale = lora->config.scale;
  Var xin = rng ? autograd::dropout(x, lora->config.dropout, *rng) : x;
  Var delta = autograd::mul(autograd::matmul(autograd::matmul(xin, p.a), p.b), scale);
  if (!p.m.defined()) return autograd::add(apply_weight(l.weight(), x, l.bias()), delta);
  // DoRA: m / ||W + scale (a b)^T||_row rescales base + delta before the bias; the norm is
  // a constant of this step.
  Tensor inv_norms = ops::pow(dora_row_norms(l.weight(), p.a.value(), p.b.value(), lora->config.scale), -1.0);
  Var y = autograd::mul(autograd::add(apply_weight(l.weight(), x, Tensor()), delta),
                        autograd::mul(p.m, Var(inv_norms)));
  return l.has_bias() ? autograd::add(y, Var(l.bias())) : y;
}

Var DifferentiableTransformer::norm(const std::string& path, const Var& x, const LoraAdapters* lora) const {
  auto it = params_.find(path + ".weight");
  if (it == params_.end()) throw InternalError("training: no norm weight '" + path + ".weight'");
  const auto& spec = model_.spec();
  return autograd::rms_norm(x, trained_or(lora, path + ".weight", *it->second), spec.norm_eps, spec.norm_unit_offset);
}

Var DifferentiableTransformer::attention(int64_t layer, const Var& x, const LoraAdapters* lora,
                                         ops::RandomGenerator* rng) const {
  const auto& ls = model_.spec().layers[static_cast<size_t>(layer)];
  const nn::AttentionOptions& o = ls.attention;
  const std::string base = "model.layers." + std::to_string(layer) + ".self_attn.";
  const int64_t B = x.shape()[0], L = x.shape()[1];
  Var q = project(base + "q_proj", x, lora, rng);  // [B, L, H * D]
  Var k = project(base + "k_proj", x, lora, rng);
  Var v = project(base + "v_proj", x, lora, rng);
  auto qk_norm = [&](const char* name, const Var& t) {
    auto it = params_.find(base + name + ".weight");
    return autograd::rms_norm(t, trained_or(lora, base + name + ".weight", *it->second), o.norm_eps,
                              o.qk_norm_unit_offset);
  };
  if (o.qk_norm == nn::QkNorm::full) {
    q = qk_norm("q_norm", q);
    k = qk_norm("k_norm", k);
  }
  auto heads = [&](const Var& t, int64_t h) {  // [B, L, h * D] -> [B, h, L, D]
    return autograd::transpose(autograd::reshape(t, {B, L, h, o.head_dim}), 1, 2);
  };
  q = heads(q, o.heads);
  k = heads(k, o.kv_heads);
  v = heads(v, o.kv_heads);
  if (o.qk_norm == nn::QkNorm::per_head) {
    q = qk_norm("q_norm", q);
    k = qk_norm("k_norm", k);
  }
  if (ls.rope_index >= 0) {
    const nn::RotaryEmbedding& rope = *ropes_[static_cast<size_t>(ls.rope_index)];
    std::vector<float> freqs = rope.inv_freq(L);
    ops::RopeParams p;
    p.inv_freq = Tensor::from_vector(freqs, {static_cast<int64_t>(freqs.size())}).to(x.value().device());
    p.rotary_dim = rope.config().dim;
    p.traditional = rope.config().traditional;
    p.mscale = rope.attention_scaling();
    q = autograd::rope(q, p);
    k = autograd::rope(k, p);
  }
  const float scale = o.scale != 0.0f ? o.scale : 1.0f / std::sqrt(static_cast<float>(o.head_dim));
  Var out = autograd::scaled_dot_product_attention(q, k, v, scale, /*causal=*/true);  // [B, H, L, D]
  out = autograd::reshape(autograd::transpose(out, 1, 2), {B, L, o.heads * o.head_dim});
  return project(base + "o_proj", out, lora, rng);
}

Var DifferentiableTransformer::forward(const Tensor& tokens, const LoraAdapters* lora, ops::RandomGenerator* rng) const {
  if (tokens.ndim() != 2) throw ShapeError("training forward: tokens must be [batch, seq], got " + shape_str(tokens.shape()));
  const auto& spec = model_.spec();
  auto find_embedding = [&]() -> const nn::Embedding& {
    const nn::Embedding* e = nullptr;
    model_.for_each_module([&](const std::string& path, nn::Module& m) {
      if (path == "model.embed_tokens") e = dynamic_cast<const nn::Embedding*>(&m);
    });
    if (!e) throw InternalError("training: no model.embed_tokens");
    return *e;
  };
  const nn::Embedding& embed = find_embedding();
  Var h(embed.forward(tokens));  // frozen: a constant [B, L, hidden]
  if (spec.embed_scale != 1.0f) h = autograd::mul(h, spec.embed_scale);
  const double rm = spec.residual_multiplier;
  for (int64_t i = 0; i < static_cast<int64_t>(spec.layers.size()); ++i) {
    const std::string base = "model.layers." + std::to_string(i) + ".";
    Var a = spec.pre_attn_norm.empty() ? h : norm(base + spec.pre_attn_norm, h, lora);
    a = attention(i, a, lora, rng);
    if (!spec.post_attn_norm.empty()) a = norm(base + spec.post_attn_norm, a, lora);
    if (rm != 1.0) a = autograd::mul(a, rm);
    Var r = autograd::add(h, a);
    Var f = spec.pre_ffn_norm.empty() ? r : norm(base + spec.pre_ffn_norm, r, lora);
    const std::string mlp = base + spec.mlp_name + ".";
    f = project(mlp + "down_proj",
                autograd::silu_mul(project(mlp + "gate_proj", f, lora, rng), project(mlp + "up_proj", f, lora, rng)),
                lora, rng);
    if (!spec.post_ffn_norm.empty()) f = norm(base + spec.post_ffn_norm, f, lora);
    if (rm != 1.0) f = autograd::mul(f, rm);
    h = autograd::add(r, f);
  }
  h = norm("model.norm", h, lora);
  Var logits = linears_.count("lm_head") ? project("lm_head", h, lora, rng) : apply_weight(embed.weight(), h, Tensor());
  if (spec.logits_divisor != 1.0f) logits = autograd::mul(logits, 1.0 / spec.logits_divisor);
  return logits;
}

}  // namespace lmx::train
