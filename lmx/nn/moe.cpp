#include "lmx/nn/moe.h"

#include <algorithm>
#include <functional>
#include <limits>
#include <vector>

#include "lmx/base/error.h"
#include "lmx/core/ops/elementwise.h"
#include "lmx/core/ops/index.h"
#include "lmx/core/ops/linalg.h"
#include "lmx/core/ops/shape.h"

namespace lmx::nn {
namespace {

// The device's way of adding the weighted expert outputs (expert_rows(e): expert e's
// rows of tokens_of[e]) into out [T, hidden]:
// out[t] += w * y for each of token t's experts in expert order, as the CPU loop adds
// them, without a scatter kernel: the weighted expert outputs are stacked, and the k-th
// contribution of every token is gathered and added in one op, k = 0 .. top_k - 1 (a token
// with fewer than top_k of the experts held here, under expert parallelism, gathers a row of
// zeros for the rest).
Tensor combine_on_device(Tensor out, const std::vector<std::vector<int64_t>>& tokens_of,
                         const std::vector<std::vector<float>>& weights_of, int64_t K, bool weight_inputs,
                         const std::function<Tensor(int64_t)>& expert_rows) {
  const int64_t T = out.dim(0), E = static_cast<int64_t>(tokens_of.size());
  std::vector<Tensor> ys;
  std::vector<int64_t> slot(static_cast<size_t>(T * K), -1), seen(static_cast<size_t>(T), 0);
  int64_t base = 0;
  for (int64_t e = 0; e < E; ++e) {
    const auto& toks = tokens_of[e];
    if (toks.empty()) continue;
    const int64_t n = static_cast<int64_t>(toks.size());
    Tensor y = expert_rows(e);
    if (!weight_inputs) y = ops::mul(y, Tensor::from_vector(weights_of[e], {n, 1}).to(out.device()));
    for (int64_t i = 0; i < n; ++i) {
      const int64_t t = toks[i];
      slot[static_cast<size_t>(t * K + seen[static_cast<size_t>(t)]++)] = base + i;
    }
    ys.push_back(std::move(y));
    base += n;
  }
  if (ys.empty()) return out;
  const bool partial = std::find(slot.begin(), slot.end(), -1) != slot.end();
  if (partial) ys.push_back(Tensor::zeros({1, out.dim(1)}, ys[0].dtype(), out.device()));
  Tensor all = ys.size() == 1 ? ys[0] : ops::concat(ys, 0);
  std::vector<int64_t> ids(static_cast<size_t>(T));
  for (int64_t k = 0; k < K; ++k) {
    for (int64_t t = 0; t < T; ++t) {
      const int64_t at = slot[static_cast<size_t>(t * K + k)];
      ids[static_cast<size_t>(t)] = at >= 0 ? at : base;  // base: the zero row
    }
    out = ops::add(out, ops::take(all, Tensor::from_vector(ids, {T}), 0));
  }
  return out;
}

// orow[d] += w * y[d] for d < n: both CPU paths add an expert's output row with this loop.
void add_scaled(float* orow, const float* y, float w, int64_t n) {
  for (int64_t d = 0; d < n; ++d) orow[d] += w * y[d];
}

}  // namespace

SparseMoe::SparseMoe(const MoeOptions& o) : o_(o) {
  if (o.experts <= 0 || o.top_k <= 0 || o.top_k > o.experts) {
    throw FormatError("moe: top_k " + std::to_string(o.top_k) + " must be in [1, experts = " +
                      std::to_string(o.experts) + "]");
  }
  if (o.local_experts < 0 || o.expert_begin < 0 || o.expert_begin + o.local_experts > o.experts ||
      (o.local_experts == 0 && o.expert_begin != 0)) {
    throw InvalidArgument("moe: experts [" + std::to_string(o.expert_begin) + ", " +
                          std::to_string(o.expert_begin + o.local_experts) + ") of " + std::to_string(o.experts));
  }
  if (o_.local_experts == 0) o_.local_experts = o.experts;
  o_.routing.top_k = o.top_k;
  o_.routing.norm_topk_prob = o.norm_topk_prob;
  const int64_t held = o_.local_experts;
  gate_ = std::make_unique<Linear>(o.hidden, o.experts, o.router_bias);
  register_module(o.router_name, *gate_);
  if (!o.correction_bias.empty()) register_parameter(o.correction_bias, correction_, {o.experts}, false, true);
  if (!o.expert_scale.empty()) register_parameter(o.expert_scale, expert_scale_, {o.experts});
  gate_proj_ = std::make_unique<SwitchLinear>(held, o.hidden, o.intermediate, o.expert_bias);
  up_proj_ = std::make_unique<SwitchLinear>(held, o.hidden, o.intermediate, o.expert_bias);
  down_proj_ = std::make_unique<SwitchLinear>(held, o.intermediate, o.hidden, o.expert_bias);
  register_module(o.experts_name + ".gate_proj", *gate_proj_);
  register_module(o.experts_name + ".up_proj", *up_proj_);
  register_module(o.experts_name + ".down_proj", *down_proj_);
  if (o.shared_intermediate > 0) {
    MlpOptions m;
    m.hidden = o.hidden;
    m.intermediate = o.shared_intermediate;
    m.act = o.act;
    m.bias = o.expert_bias;
    shared_ = std::make_unique<Mlp>(m);
    register_module(o.shared_name, *shared_);
    if (o.shared_gate) {
      shared_gate_ = std::make_unique<Linear>(o.hidden, 1, false);
      register_module(o.shared_name + "_gate", *shared_gate_);
    }
  }
}

Tensor SparseMoe::activate_expert(Tensor g, Tensor u) const {
  if (o_.expert_act == ExpertActivation::gated) return gated_activate(o_.act, g, u);
  g = ops::clamp(g, -std::numeric_limits<double>::infinity(), o_.swiglu_limit);
  u = ops::clamp(u, -o_.swiglu_limit, o_.swiglu_limit);
  return ops::mul(ops::mul(g, ops::sigmoid(ops::mul(g, o_.swiglu_alpha))), ops::add(u, 1.0));
}

int64_t SparseMoe::local_expert(int64_t e) const {
  const int64_t i = e - o_.expert_begin;
  return i >= 0 && i < o_.local_experts ? i : -1;
}

Tensor SparseMoe::expert(const Tensor& xs, int64_t e) const {
  return down_proj_->forward(activate_expert(gate_proj_->forward(xs, e), up_proj_->forward(xs, e)), e);
}

bool SparseMoe::experts_prepared() const {
  for (const SwitchLinear* l : {gate_proj_.get(), up_proj_.get(), down_proj_.get()})
    if (!l->quantized() || l->prepared().empty()) return false;
  return true;
}

std::optional<Mlp::GatedLayers> SparseMoe::shared_in_batches() const {
  if (!shared_ || shared_gate_) return std::nullopt;
  const std::optional<Mlp::GatedLayers> l = shared_->gated_layers();
  if (!l) return std::nullopt;
  for (const Linear* p : {l->gate, l->up, l->down})
    if (!p->weight().quantized() || !p->weight().quant().prepared || p->lora()) return std::nullopt;
  return l;
}

void SparseMoe::add_experts_one_token(const Tensor& rows, const MoeRoute& route, const Mlp::GatedLayers* shared,
                                      float* out) const {
  // Expert order, as the many-token loop adds them.
  std::vector<size_t> order(route.experts.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return route.experts[a] < route.experts[b]; });
  const size_t K = order.size();
  if (K == 0 && !shared) return;  // none of the token's experts is held here (expert parallelism)
  std::vector<Tensor> xs(K);
  std::vector<QuantizedWeight> qs;
  qs.reserve(3 * K);
  std::vector<const Tensor*> in;
  std::vector<const QuantizedWeight*> ws;
  std::vector<Tensor> bs;
  for (size_t k = 0; k < K; ++k) {
    const int64_t e = route.experts[order[k]];
    xs[k] = o_.weight_inputs ? ops::mul(rows, Tensor::from_vector(std::vector<float>{route.weights[order[k]]}, {1, 1}))
                             : rows;
    for (const SwitchLinear* l : {gate_proj_.get(), up_proj_.get()}) {
      qs.push_back(l->expert_quant(e));
      in.push_back(o_.weight_inputs ? &xs[k] : &rows);
      ws.push_back(&qs.back());
      bs.push_back(l->expert_bias(e));
    }
  }
  auto add_layer = [&](const Linear* l, const Tensor* x) {
    in.push_back(x);
    ws.push_back(&l->weight().quant());
    bs.push_back(l->has_bias() ? l->bias() : Tensor());
  };
  if (shared) {
    add_layer(shared->gate, &rows);
    add_layer(shared->up, &rows);
  }
  const std::vector<Tensor> gu = ops::quantized_linears_each(in, ws, bs);
  in.clear(), ws.clear(), bs.clear();
  for (size_t k = 0; k < K; ++k) {
    const int64_t e = route.experts[order[k]];
    xs[k] = activate_expert(gu[2 * k], gu[2 * k + 1]);
    qs.push_back(down_proj_->expert_quant(e));
    in.push_back(&xs[k]);
    ws.push_back(&qs.back());
    bs.push_back(down_proj_->expert_bias(e));
  }
  Tensor shared_h;
  if (shared) {
    shared_h = gated_activate(shared->act, gu[2 * K], gu[2 * K + 1]);
    add_layer(shared->down, &shared_h);
  }
  const std::vector<Tensor> ys = ops::quantized_linears_each(in, ws, bs);
  if (shared) {
    const Tensor y = ys[K].to(Dtype::f32).contiguous();
    std::copy(y.data<float>(), y.data<float>() + o_.hidden, out);
  }
  for (size_t k = 0; k < K; ++k) {
    const Tensor y = ys[k].to(Dtype::f32).contiguous();
    const float* yv = y.data<float>();
    add_scaled(out, yv, o_.weight_inputs ? 1.0f : route.weights[order[k]], o_.hidden);
  }
}

Tensor SparseMoe::forward(const Tensor& x, const Tensor& route_x) const {
  const Shape shape = x.shape();
  const Device device = x.device();
  Tensor rows = (x.dtype() == Dtype::f32 ? x : x.to(Dtype::f32)).contiguous().reshape({-1, o_.hidden});
  const Tensor route_rows = &route_x == &x ? rows : route_x.reshape({-1, o_.hidden});
  const int64_t T = rows.dim(0), E = o_.experts, K = o_.top_k;
  if (route_rows.dim(0) != T) throw ShapeError("moe: " + std::to_string(route_rows.dim(0)) + " routed rows for " + std::to_string(T));
  // The routing reads the router's logits on the host: one copy per layer on a device.
  Tensor logits = gate_->forward(route_rows).to(Dtype::f32).to(Device::cpu()).contiguous();  // [T, E]
  Tensor correction = correction_.defined() ? correction_.to(Dtype::f32).to(Device::cpu()).contiguous() : Tensor();
  MoeRoute route = route_tokens(o_.routing, logits.data<float>(), T, E,
                                correction.defined() ? correction.data<float>() : nullptr);
  if (expert_scale_.defined()) {
    const std::vector<float> scale = expert_scale_.to(Device::cpu()).to_float_vector();
    for (size_t i = 0; i < route.weights.size(); ++i) route.weights[i] *= scale[static_cast<size_t>(route.experts[i])];
  }
  // The chosen experts this layer holds (every one unless the experts are split over
  // ranks), by local index, each with its token.
  const int64_t held = o_.local_experts;
  std::vector<int64_t> token_of(route.experts.size());
  for (size_t i = 0; i < token_of.size(); ++i) token_of[i] = static_cast<int64_t>(i) / K;
  if (held != E) {
    MoeRoute mine;
    std::vector<int64_t> mine_tokens;
    for (size_t i = 0; i < route.experts.size(); ++i) {
      if (const int64_t e = local_expert(route.experts[i]); e >= 0) {
        mine.experts.push_back(e);
        mine.weights.push_back(route.weights[i]);
        mine_tokens.push_back(token_of[i]);
      }
    }
    route = std::move(mine);
    token_of = std::move(mine_tokens);
  }
  std::vector<std::vector<int64_t>> tokens_of(static_cast<size_t>(held));
  std::vector<std::vector<float>> weights_of(static_cast<size_t>(held));
  for (size_t i = 0; i < route.experts.size(); ++i) {
    tokens_of[route.experts[i]].push_back(token_of[i]);
    weights_of[route.experts[i]].push_back(route.weights[i]);
  }
  // One CPU decode token with prepared experts: the batched path (the shared expert inside
  // it where it fits).
  const bool one_token = device.is_cpu() && T == 1 && experts_prepared();
  const std::optional<Mlp::GatedLayers> shared = one_token ? shared_in_batches() : std::nullopt;
  Tensor out = shared_ && !shared ? shared_->forward(rows).to(Dtype::f32).contiguous()
                                  : Tensor::zeros({T, o_.hidden}, Dtype::f32, device);
  if (shared_gate_) out = ops::mul(out, ops::sigmoid(shared_gate_->forward(rows))).contiguous();
  auto expert_rows = [&](int64_t e) {
    const auto& toks = tokens_of[e];
    const int64_t n = static_cast<int64_t>(toks.size());
    Tensor xs = ops::take(rows, Tensor::from_vector(toks, {n}), 0);
    if (o_.weight_inputs) xs = ops::mul(xs, Tensor::from_vector(weights_of[e], {n, 1}).to(device));
    return expert(xs, e).to(Dtype::f32).contiguous();
  };
  if (!device.is_cpu()) return combine_on_device(out, tokens_of, weights_of, K, o_.weight_inputs, expert_rows).reshape(shape);
  float* o = out.data<float>();
  if (one_token) {
    add_experts_one_token(rows, route, shared ? &*shared : nullptr, o);
    return out.reshape(shape);
  }
  for (int64_t e = 0; e < held; ++e) {
    const auto& toks = tokens_of[e];
    if (toks.empty()) continue;
    const int64_t n = static_cast<int64_t>(toks.size());
    Tensor y = expert_rows(e);
    const float* yv = y.data<float>();
    for (int64_t i = 0; i < n; ++i) {
      add_scaled(o + toks[i] * o_.hidden, yv + i * o_.hidden, o_.weight_inputs ? 1.0f : weights_of[e][i], o_.hidden);
    }
  }
  return out.reshape(shape);
}

}  // namespace lmx::nn
