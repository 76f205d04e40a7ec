#include "lmx/train/differentiable_transformer.h"

#include <cmath>

#include "lmx/base/error.h"
#include "lmx/core/autograd/checkpoint.h"
#include "lmx/core/autograd/functions.h"
#include "lmx/core/communicator.h"
#include "lmx/core/ops/elementwise.h"
#include "lmx/core/ops/random.h"
#include "lmx/nn/moe_routing.h"
#include "lmx/train/rank_autograd.h"

namespace lmx::train {

using autograd::Var;
using models::LayerSpec;

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

DifferentiableTransformer::DifferentiableTransformer(models::TransformerLM& model, Options options)
    : model_(model), options_(options), comm_(model.communicator()), linears_(linear_layers(model)) {
  const auto& spec = model.spec();
  if (spec.shard.world > 1 && !comm_) {
    throw InvalidArgument("training " + spec.model_type + ": rank " + std::to_string(spec.shard.rank) + " of " +
                          std::to_string(spec.shard.world) + " has no communicator");
  }
  require(spec.norm_kind == nn::NormKind::rms, spec, "LayerNorm");
  require(!spec.parallel_residual, spec, "a parallel residual");
  require(spec.positions == 0, spec, "learned position embeddings");
  require(spec.norm_weight && !spec.norm_embeddings && !spec.lm_head_bias, spec, "this norm / head layout");
  require(spec.body_name == "model" && spec.attn_name == "self_attn" && spec.layers_name == "layers" &&
              spec.embed_name == "embed_tokens" && spec.final_norm_name == "norm" && spec.lm_head_name == "lm_head",
          spec, "these checkpoint names");
  for (const auto& ls : spec.layers) {
    require(!ls.mla, spec, "latent attention");
    require(!ls.attention.fused_qkv, spec, "a fused qkv projection");
    require(ls.attention.causal && !ls.attention.sinks && ls.attention.chunk == 0 && ls.attention.clip_qkv == 0.0f &&
                !ls.attention.qk_l2_norm && ls.attention.temperature_scale == 0.0f && !ls.attention.output_gate,
            spec, "this attention variant (sinks, chunks, clipping, L2 norms, temperature, output gate)");
    const auto qk = ls.attention.qk_norm;
    require(qk == nn::QkNorm::none || qk == nn::QkNorm::per_head || qk == nn::QkNorm::full, spec, "this q/k norm");
    require(!ls.attention.qk_norm_after_rope && !ls.attention.sub_norm && ls.attention.o_name == "o_proj", spec,
            "this attention layout");
    if (ls.moe) {
      const nn::MoeOptions& m = ls.moe_options;
      require(m.routing.scoring == nn::MoeScoring::softmax && m.routing.groups == 1 && m.correction_bias.empty(), spec,
              "this expert routing (sigmoid scores, groups, a correction bias)");
      require(m.shared_intermediate == 0 && !m.weight_inputs && m.expert_act == nn::ExpertActivation::gated &&
                  nn::fused_gate(m.act).has_value(),
              spec, "shared experts or this expert activation");
    } else {
      require(ls.mlp.kind == nn::MlpKind::gated && nn::fused_gate(ls.mlp.act).has_value(), spec,
              "an MLP other than SwiGLU / GeGLU");
      require(ls.mlp.sub_norm_eps == 0.0f, spec, "an MLP sub-norm");
    }
  }
  model.for_each_module([&](const std::string& path, nn::Module& m) {
    if (auto* e = dynamic_cast<nn::SwitchLinear*>(&m)) switches_[path] = e;
    if (auto* e = dynamic_cast<nn::Embedding*>(&m); e && path == "model.embed_tokens") embed_ = e;
  });
  if (!embed_) throw InternalError("training: no model.embed_tokens");
  for (auto& slot : model.parameters()) params_[slot.name] = slot.tensor;
  for (const auto& rc : spec.ropes) require(!rc.inverted, spec, "an inverted rotary embedding");
  for (const auto& rc : spec.ropes) ropes_.push_back(std::make_unique<nn::RotaryEmbedding>(rc));
}

Var DifferentiableTransformer::project(const std::string& path, const Var& x, const LoraAdapters* lora,
                                       ops::RandomGenerator* rng, bool row_parallel) const {
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
  const bool rank_inputs = row_parallel && comm_;  // x: this rank's columns of the input
  const float dropout = lora->config.dropout;
  Var xin = !rng ? x : rank_inputs ? rank_dropout(x, dropout, *rng) : autograd::dropout(x, dropout, *rng);
  Var delta = autograd::mul(autograd::matmul(autograd::matmul(xin, p.a), p.b), scale);
  if (!p.m.defined()) return autograd::add(apply_weight(l.weight(), x, l.bias()), delta);
  // DoRA: m / ||W + scale (a b)^T||_row rescales base + delta before the bias; the norm is
  // a constant of this step (on a row-parallel rank: over every rank's columns, the ranks'
  // squares added, so that each rank's part of the sum is rescaled as the whole).
  Tensor squares = dora_squared_row_norms(l.weight(), p.a.value(), p.b.value(), lora->config.scale);
  if (rank_inputs) squares = comm_->all_reduce_sum(squares);
  Tensor inv_norms = ops::pow(ops::sqrt(squares), -1.0);
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

Var DifferentiableTransformer::attention(int64_t layer, const Var& x_in, const LoraAdapters* lora,
                                         ops::RandomGenerator* rng) const {
  const auto& ls = model_.spec().layers[static_cast<size_t>(layer)];
  const nn::AttentionOptions& o = ls.attention;
  const std::string base = "model.layers." + std::to_string(layer) + ".self_attn.";
  const int64_t B = x_in.shape()[0], L = x_in.shape()[1];
  const Var x = split_input(x_in);
  Var q = project(base + "q_proj", x, lora, rng);  // [B, L, H * D]  (a split model: this rank's heads)
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
  ops::AttentionParams ap;
  ap.scale = o.scale;  // 0: 1 / sqrt(head_dim)
  ap.causal = true;
  ap.window = o.window;
  ap.softcap = o.softcap;
  Var out = autograd::scaled_dot_product_attention(q, k, v, ap);  // [B, H, L, D]
  out = autograd::reshape(autograd::transpose(out, 1, 2), {B, L, o.heads * o.head_dim});
  return split_output(project(base + "o_proj", out, lora, rng, true));
}

Var DifferentiableTransformer::mlp(int64_t layer, const Var& x_in, const LoraAdapters* lora,
                                   ops::RandomGenerator* rng) const {
  const models::LayerSpec& ls = model_.spec().layers[static_cast<size_t>(layer)];
  const std::string base = "model.layers." + std::to_string(layer) + "." + model_.spec().mlp_name + ".";
  const Var x = split_input(x_in);
  return split_output(project(
      base + "down_proj",
      autograd::gated_activation(*nn::fused_gate(ls.mlp.act), project(base + "gate_proj", x, lora, rng),
                                 project(base + "up_proj", x, lora, rng)),
      lora, rng, true));
}

Var DifferentiableTransformer::rank_dropout(const Var& x, float p, ops::RandomGenerator& rng) const {
  if (p == 0.0f) return x;
  // The whole input's mask drawn as autograd::dropout draws it (a mask of ones), this
  // rank's columns kept.
  Shape whole = x.shape();
  const int64_t n = whole.back(), rank = model_.spec().shard.rank;
  whole.back() = n * model_.spec().shard.world;
  const Tensor keep = autograd::dropout(Var(Tensor::full(whole, 1.0)), p, rng).value();
  const Tensor mine = keep.slice(keep.ndim() - 1, rank * n, (rank + 1) * n).contiguous();
  return autograd::mul(x, Var(mine.to(x.value().device())));
}

Var DifferentiableTransformer::split_input(const Var& x) const {
  return comm_ ? gradient_summed_over_ranks(x, *comm_) : x;
}

Var DifferentiableTransformer::split_output(const Var& x) const { return comm_ ? sum_over_ranks(x, *comm_) : x; }

// One expert's projection of the rows routed to it (frozen, dense or packed).
Var DifferentiableTransformer::expert_projection(const std::string& path, int64_t e, const Var& x) const {
  auto it = switches_.find(path);
  if (it == switches_.end()) throw InternalError("training: no experts '" + path + "'");
  const nn::SwitchLinear& s = *it->second;
  if (s.quantized()) return autograd::quantized_linear(x, s.expert_quant(e), s.expert_bias(e));
  return autograd::linear(x, Var(s.expert_weight(e)), Var(s.expert_bias(e)));
}

// The sparse MoE block: the router's softmax picks top-k experts per token (the same
// choice nn::route_tokens makes at inference); the gradient flows through the chosen
// probabilities (renormalized when norm_topk_prob), through the experts' MLPs to their
// inputs, and through the router to x.
Var DifferentiableTransformer::experts(int64_t layer, const Var& x, const LoraAdapters* lora,
                                       ops::RandomGenerator* rng) const {
  const auto& spec = model_.spec();
  const nn::MoeOptions& o = spec.layers[static_cast<size_t>(layer)].moe_options;
  const std::string base = "model.layers." + std::to_string(layer) + "." + spec.mlp_name + ".";
  const Shape shape = x.shape();
  const int64_t H = shape.back(), E = o.experts, K = o.top_k;
  // A split model's rank holds experts [first, first + held) (expert parallelism) and adds
  // the chosen ones among them; the router is whole, so every rank routes alike.
  const int64_t first = o.expert_begin, held = o.local_experts > 0 ? o.local_experts : E;
  Var rows = autograd::reshape(split_input(x), {-1, H});
  const int64_t T = rows.shape()[0];
  Var logits = project(base + o.router_name, rows, lora, rng);  // [T, E]
  nn::MoeRouting routing = o.routing;
  routing.top_k = K;
  routing.norm_topk_prob = o.norm_topk_prob;
  Tensor host_logits = logits.value().to(Device::cpu()).to(Dtype::f32).contiguous();
  const nn::MoeRoute route = nn::route_tokens(routing, host_logits.data<float>(), T, E);
  std::vector<float> chosen(static_cast<size_t>(T * E), 0.0f);
  std::vector<std::vector<int64_t>> tokens_of(static_cast<size_t>(E));
  for (int64_t i = 0; i < T * K; ++i) {
    chosen[static_cast<size_t>(i / K * E + route.experts[i])] = 1.0f;
    tokens_of[static_cast<size_t>(route.experts[i])].push_back(i / K);
  }
  const Device dev = x.value().device();
  Var weights = autograd::mul(autograd::softmax(logits), Var(Tensor::from_vector(chosen, {T, E}).to(dev)));
  if (o.norm_topk_prob) weights = autograd::div(weights, autograd::sum(weights, -1, true));
  if (routing.routed_scaling != 1.0f) weights = autograd::mul(weights, routing.routed_scaling);
  const std::string sw = base + o.experts_name + ".";
  const auto act = *nn::fused_gate(o.act);
  Var out;
  for (int64_t e = first; e < first + held; ++e) {
    const auto& toks = tokens_of[static_cast<size_t>(e)];
    if (toks.empty()) continue;
    const int64_t n = static_cast<int64_t>(toks.size()), s = e - first;  // s: the rank's stacked index
    Var xs = autograd::embedding(rows, Tensor::from_vector(toks, {n}).to(dev));  // the routed rows [n, H]
    Var y = expert_projection(sw + "down_proj", s,
                              autograd::gated_activation(act, expert_projection(sw + "gate_proj", s, xs),
                                                         expert_projection(sw + "up_proj", s, xs)));
    // Back to the token rows ([T, n] one-hot @ [n, H]), times each token's weight for e.
    std::vector<float> scatter(static_cast<size_t>(T * n), 0.0f), pick(static_cast<size_t>(E), 0.0f);
    for (int64_t j = 0; j < n; ++j) scatter[static_cast<size_t>(toks[static_cast<size_t>(j)] * n + j)] = 1.0f;
    pick[static_cast<size_t>(e)] = 1.0f;
    Var placed = autograd::matmul(Var(Tensor::from_vector(scatter, {T, n}).to(dev)), y);
    Var w = autograd::matmul(weights, Var(Tensor::from_vector(pick, {E, 1}).to(dev)));  // [T, 1]
    Var term = autograd::mul(placed, w);
    out = out.defined() ? autograd::add(out, term) : term;
  }
  // No token chose this rank's experts: zeros that still depend on the routing weights, so
  // that the gradient of the input reaches this rank's collective as it does the others'.
  if (!out.defined()) out = autograd::matmul(weights, Var(Tensor::zeros({E, H}, Dtype::f32, dev)));
  return split_output(autograd::reshape(out, shape));
}

Var DifferentiableTransformer::block(int64_t i, const Var& h, const LoraAdapters* lora, ops::RandomGenerator* rng) const {
  const auto& spec = model_.spec();
  const double rm = spec.residual_multiplier;
  const std::string base = "model.layers." + std::to_string(i) + ".";
  Var a = spec.pre_attn_norm.empty() ? h : norm(base + spec.pre_attn_norm, h, lora);
  a = attention(i, a, lora, rng);
  if (!spec.post_attn_norm.empty()) a = norm(base + spec.post_attn_norm, a, lora);
  if (rm != 1.0) a = autograd::mul(a, rm);
  Var r = autograd::add(h, a);
  Var f = spec.pre_ffn_norm.empty() ? r : norm(base + spec.pre_ffn_norm, r, lora);
  const LayerSpec& ls = spec.layers[static_cast<size_t>(i)];
  f = ls.moe ? experts(i, f, lora, rng) : mlp(i, f, lora, rng);
  if (!spec.post_ffn_norm.empty()) f = norm(base + spec.post_ffn_norm, f, lora);
  if (rm != 1.0) f = autograd::mul(f, rm);
  return autograd::add(r, f);
}

// The checkpoint's inputs are h and the block's trainable leaves; its function rebuilds
// an adapter set of this block over whatever Vars it is given (the originals in the
// forward, fresh leaves in the backward's second run). Dropout: the first run draws
// from `rng` as the plain forward does, the second replays a copy of its state before.
Var DifferentiableTransformer::checkpointed_block(int64_t i, const Var& h, const LoraAdapters* lora,
                                                  ops::RandomGenerator* rng) const {
  const std::string prefix = "model.layers." + std::to_string(i) + ".";
  auto mine = [&](const std::string& name) { return name.compare(0, prefix.size(), prefix) == 0; };
  std::vector<Var> inputs{h};
  // The layers (LoRA / DoRA: a, b and m if any) and weights (full) among the inputs after h.
  std::vector<std::pair<std::string, bool>> layers;
  std::vector<std::string> weights;
  for (const auto& [name, p] : lora->layers) {
    if (!mine(name)) continue;
    inputs.insert(inputs.end(), {p.a, p.b});
    if (p.m.defined()) inputs.push_back(p.m);
    layers.emplace_back(name, p.m.defined());
  }
  for (const auto& [name, w] : lora->weights) {
    if (!mine(name)) continue;
    inputs.push_back(w);
    weights.push_back(name);
  }
  auto replay = rng ? std::make_shared<ops::RandomGenerator>(*rng) : nullptr;
  auto first = std::make_shared<bool>(true);
  auto fn = [this, i, rng, replay, first, layers, weights, config = lora->config](const std::vector<Var>& in) {
    LoraAdapters view;
    view.config = config;
    size_t k = 1;
    for (const auto& [name, dora] : layers) {
      LoraPair& p = view.layers[name];
      p.a = in[k++];
      p.b = in[k++];
      if (dora) p.m = in[k++];
    }
    for (const std::string& name : weights) view.weights[name] = in[k++];
    ops::RandomGenerator again = replay ? *replay : ops::RandomGenerator();
    ops::RandomGenerator* r = !rng ? nullptr : *first ? rng : &again;
    *first = false;
    return block(i, in[0], &view, r);
  };
  return autograd::checkpoint(fn, inputs);
}

Var DifferentiableTransformer::hidden(const Tensor& tokens, const LoraAdapters* lora, ops::RandomGenerator* rng) const {
  if (tokens.ndim() != 2) throw ShapeError("training forward: tokens must be [batch, seq], got " + shape_str(tokens.shape()));
  const auto& spec = model_.spec();
  Var h(model_.embed_tokens(tokens));  // frozen: a constant [B, L, hidden] (a split model's: summed)
  if (spec.embed_scale != 1.0f) h = autograd::mul(h, spec.embed_scale);
  for (int64_t i = 0; i < static_cast<int64_t>(spec.layers.size()); ++i) {
    h = options_.grad_checkpoint && lora ? checkpointed_block(i, h, lora, rng) : block(i, h, lora, rng);
  }
  return norm("model.norm", h, lora);
}

Var DifferentiableTransformer::head(const Var& h, const LoraAdapters* lora, ops::RandomGenerator* rng) const {
  const auto& spec = model_.spec();
  // A vocabulary-parallel head: this rank's columns of the logits, then every rank's joined.
  const bool split = comm_ && spec.shard.vocab_parallel;
  const Var x = split ? split_input(h) : h;
  Var logits = linears_.count("lm_head") ? project("lm_head", x, lora, rng) : apply_weight(embed_->weight(), x, Tensor());
  if (split) logits = gather_last_over_ranks(logits, *comm_);
  if (spec.logits_divisor != 1.0f) logits = autograd::mul(logits, 1.0 / spec.logits_divisor);
  if (spec.final_softcap > 0.0f) logits = autograd::softcap(logits, spec.final_softcap);
  return logits;
}

Var DifferentiableTransformer::forward(const Tensor& tokens, const LoraAdapters* lora, ops::RandomGenerator* rng) const {
  return head(hidden(tokens, lora, rng), lora, rng);
}

// Under grad_checkpoint: sum over chunks of rows of (chunk's weight / total weight) x the
// chunk's mean loss, each chunk's head + cross-entropy checkpointed (its rows picked with
// a differentiable gather). An adapted output head keeps the unchunked path.
Var DifferentiableTransformer::loss(const Tensor& tokens, const Tensor& targets, const Tensor& weights,
                                    const LoraAdapters* lora, ops::RandomGenerator* rng) const {
  if (!options_.grad_checkpoint || !lora || lora->layers.count("lm_head") || lora->weights.count("lm_head.weight")) {
    Var logits = forward(tokens, lora, rng);
    return autograd::cross_entropy(autograd::reshape(logits, {-1, logits.shape().back()}), targets, weights);
  }
  Var h = hidden(tokens, lora, rng);
  Var rows = autograd::reshape(h, {-1, h.shape().back()});
  const int64_t N = rows.shape()[0];
  if (targets.numel() != N || weights.numel() != N) {
    throw ShapeError("training loss: " + std::to_string(N) + " positions, " + std::to_string(targets.numel()) +
                     " targets, " + std::to_string(weights.numel()) + " weights");
  }
  const std::vector<float> w = weights.to_float_vector();
  double total = 0;
  for (float x : w) total += x;
  if (!(total > 0.0)) throw InvalidArgument("cross_entropy: no position has a positive weight");
  const int64_t V = model_.vocab_size();
  const int64_t chunk = options_.loss_chunk_rows > 0 ? options_.loss_chunk_rows
                                                     : std::max<int64_t>(1, (int64_t{64} << 20) / (V * 4));
  const Tensor flat_targets = targets.reshape({N});
  const Device dev = rows.value().device();
  Var out;
  for (int64_t s = 0; s < N; s += chunk) {
    const int64_t e = std::min(N, s + chunk);
    double part = 0;
    for (int64_t j = s; j < e; ++j) part += w[static_cast<size_t>(j)];
    if (!(part > 0.0)) continue;
    std::vector<int64_t> ids(static_cast<size_t>(e - s));
    for (int64_t j = s; j < e; ++j) ids[static_cast<size_t>(j - s)] = j;
    Var piece = autograd::embedding(rows, Tensor::from_vector(ids, {e - s}).to(dev));
    const Tensor t = flat_targets.slice(0, s, e).contiguous();
    const Tensor wc = Tensor::from_vector(std::vector<float>(w.begin() + s, w.begin() + e), {e - s}).to(dev);
    Var l = autograd::checkpoint(
        [this, t, wc](const std::vector<Var>& in) {
          return autograd::cross_entropy(head(in[0], nullptr, nullptr), t, wc);
        },
        {piece});
    Var term = autograd::mul(l, part / total);
    out = out.defined() ? autograd::add(out, term) : term;
  }
  return out;
}

}  // namespace lmx::train
