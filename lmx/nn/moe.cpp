#include "lmx/nn/moe.h"

#include <limits>
#include <vector>

#include "lmx/base/error.h"
#include "lmx/core/ops/elementwise.h"
#include "lmx/core/ops/index.h"

namespace lmx::nn {

SparseMoe::SparseMoe(const MoeOptions& o) : o_(o) {
  if (o.experts <= 0 || o.top_k <= 0 || o.top_k > o.experts) {
    throw FormatError("moe: top_k " + std::to_string(o.top_k) + " must be in [1, experts = " +
                      std::to_string(o.experts) + "]");
  }
  o_.routing.top_k = o.top_k;
  o_.routing.norm_topk_prob = o.norm_topk_prob;
  gate_ = std::make_unique<Linear>(o.hidden, o.experts, o.router_bias);
  register_module(o.router_name, *gate_);
  if (!o.correction_bias.empty()) register_parameter(o.correction_bias, correction_, {o.experts}, false, true);
  gate_proj_ = std::make_unique<SwitchLinear>(o.experts, o.hidden, o.intermediate, o.expert_bias);
  up_proj_ = std::make_unique<SwitchLinear>(o.experts, o.hidden, o.intermediate, o.expert_bias);
  down_proj_ = std::make_unique<SwitchLinear>(o.experts, o.intermediate, o.hidden, o.expert_bias);
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

Tensor SparseMoe::expert(const Tensor& xs, int64_t e) const {
  Tensor g = gate_proj_->forward(xs, e), u = up_proj_->forward(xs, e);
  Tensor h;
  if (o_.expert_act == ExpertActivation::gated) {
    h = gated_activate(o_.act, g, u);
  } else {
    g = ops::clamp(g, -std::numeric_limits<double>::infinity(), o_.swiglu_limit);
    u = ops::clamp(u, -o_.swiglu_limit, o_.swiglu_limit);
    h = ops::mul(ops::mul(g, ops::sigmoid(ops::mul(g, o_.swiglu_alpha))), ops::add(u, 1.0));
  }
  return down_proj_->forward(h, e);
}

Tensor SparseMoe::forward(const Tensor& x) const {
  // The routing below reads the router's logits on the host.
  if (!x.device().is_cpu()) throw Unsupported("moe: expert routing runs on the CPU only so far, input on " + x.device().str());
  const Shape shape = x.shape();
  Tensor rows = (x.dtype() == Dtype::f32 ? x : x.to(Dtype::f32)).contiguous().reshape({-1, o_.hidden});
  const int64_t T = rows.dim(0), E = o_.experts, K = o_.top_k;
  Tensor logits = gate_->forward(rows).to(Dtype::f32).contiguous();  // [T, E]
  Tensor correction = correction_.defined() ? correction_.to(Dtype::f32).contiguous() : Tensor();
  const MoeRoute route = route_tokens(o_.routing, logits.data<float>(), T, E,
                                      correction.defined() ? correction.data<float>() : nullptr);
  std::vector<std::vector<int64_t>> tokens_of(static_cast<size_t>(E));
  std::vector<std::vector<float>> weights_of(static_cast<size_t>(E));
  for (int64_t i = 0; i < T * K; ++i) {
    tokens_of[route.experts[i]].push_back(i / K);
    weights_of[route.experts[i]].push_back(route.weights[i]);
  }
  Tensor out = shared_ ? shared_->forward(rows).to(Dtype::f32).contiguous() : Tensor::zeros({T, o_.hidden});
  if (shared_gate_) out = ops::mul(out, ops::sigmoid(shared_gate_->forward(rows))).contiguous();
  float* o = out.data<float>();
  for (int64_t e = 0; e < E; ++e) {
    const auto& toks = tokens_of[e];
    if (toks.empty()) continue;
    const int64_t n = static_cast<int64_t>(toks.size());
    Tensor xs = ops::take(rows, Tensor::from_vector(toks, {n}), 0);
    if (o_.weight_inputs) xs = ops::mul(xs, Tensor::from_vector(weights_of[e], {n, 1}));
    Tensor y = expert(xs, e).to(Dtype::f32).contiguous();
    const float* yv = y.data<float>();
    for (int64_t i = 0; i < n; ++i) {
      float* orow = o + toks[i] * o_.hidden;
      const float w = o_.weight_inputs ? 1.0f : weights_of[e][i];
      for (int64_t d = 0; d < o_.hidden; ++d) orow[d] += w * yv[i * o_.hidden + d];
    }
  }
  return out.reshape(shape);
}

}  // namespace lmx::nn
