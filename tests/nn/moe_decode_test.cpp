// A decode token through SparseMoe with prepared quantized experts takes the batched path
// (the chosen experts' gate/up in one call, their down projections in another, a shared
// expert's inside them): its output has the bits of the shared expert's own forward plus the
// chosen experts run one at a time through SwitchLinear, weighted and added in expert order,
// for each family's expert options.
#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "lmx/core/ops/elementwise.h"
#include "lmx/core/ops/linalg.h"
#include "lmx/nn/linear.h"
#include "lmx/nn/mlp.h"
#include "lmx/nn/moe.h"

namespace lmx::nn {
namespace {

Tensor random_tensor(const Shape& shape, std::mt19937& rng, float scale) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = dist(rng);
  return Tensor::from_vector(v, shape);
}

struct Built {
  std::unique_ptr<SparseMoe> moe;
  const SwitchLinear* proj[3] = {nullptr, nullptr, nullptr};  // gate, up, down
  const Mlp* shared = nullptr;
  Tensor router_w, router_b, correction;
};

Built build(const MoeOptions& o, uint32_t seed) {
  Built b;
  b.moe = std::make_unique<SparseMoe>(o);
  std::mt19937 rng(seed);
  for (auto& slot : b.moe->parameters()) {
    *slot.tensor = random_tensor(slot.shape, rng, slot.name.find("bias") != std::string::npos ? 0.5f : 0.2f);
    if (slot.name == o.router_name + ".weight") b.router_w = *slot.tensor;
    if (slot.name == o.router_name + ".bias") b.router_b = *slot.tensor;
    if (slot.name == o.correction_bias) b.correction = *slot.tensor;
  }
  const char* names[3] = {".gate_proj", ".up_proj", ".down_proj"};
  b.moe->for_each_module([&](const std::string& path, Module& m) {
    for (int i = 0; i < 3; ++i)
      if (path == o.experts_name + names[i]) {
        auto& s = dynamic_cast<SwitchLinear&>(m);
        s.quantize(4, 64, Dtype::bf16);
        s.prepare();
        b.proj[i] = &s;
      }
    if (path == o.shared_name) b.shared = &dynamic_cast<Mlp&>(m);
    for (const char* name : names)
      if (o.shared_intermediate > 0 && path == o.shared_name + name) {
        auto& l = dynamic_cast<Linear&>(m);
        l.quantize(4, 64, Dtype::bf16);
        l.prepare();
      }
  });
  return b;
}

// The experts of x's one token, one SwitchLinear call per expert and projection.
std::vector<float> one_by_one(const Built& b, const MoeOptions& o, const Tensor& x) {
  const Tensor logits = ops::linear(x, b.router_w, b.router_b);
  MoeRouting r = o.routing;
  r.top_k = o.top_k;
  r.norm_topk_prob = o.norm_topk_prob;
  const MoeRoute route = route_tokens(r, logits.data<float>(), 1, o.experts,
                                      b.correction.defined() ? b.correction.data<float>() : nullptr);
  std::vector<float> out(static_cast<size_t>(o.hidden), 0.0f);
  if (b.shared) {  // the shared expert's own forward first
    const Tensor y = b.shared->forward(x).contiguous();
    std::copy(y.data<float>(), y.data<float>() + o.hidden, out.begin());
  }
  for (int64_t e = 0; e < o.experts; ++e)
    for (size_t k = 0; k < route.experts.size(); ++k) {
      if (route.experts[k] != e) continue;
      const float w = route.weights[k];
      const Tensor xs = o.weight_inputs ? ops::mul(x, Tensor::from_vector(std::vector<float>{w}, {1, 1})) : x;
      Tensor g = b.proj[0]->forward(xs, e), u = b.proj[1]->forward(xs, e), h;
      if (o.expert_act == ExpertActivation::gated) {
        h = gated_activate(o.act, g, u);
      } else {
        g = ops::clamp(g, -std::numeric_limits<double>::infinity(), o.swiglu_limit);
        u = ops::clamp(u, -o.swiglu_limit, o.swiglu_limit);
        h = ops::mul(ops::mul(g, ops::sigmoid(ops::mul(g, o.swiglu_alpha))), ops::add(u, 1.0));
      }
      const Tensor y = b.proj[2]->forward(h, e).contiguous();
      const float scale = o.weight_inputs ? 1.0f : w;
      for (int64_t d = 0; d < o.hidden; ++d) out[static_cast<size_t>(d)] += scale * y.data<float>()[d];
    }
  return out;
}

MoeOptions base(int64_t experts, int64_t top_k) {
  MoeOptions o;
  o.hidden = 192;
  o.intermediate = 128;
  o.experts = experts;
  o.top_k = top_k;
  return o;
}

TEST(SparseMoe, DecodeTokenEqualsExpertsRunOneByOneBitForBit) {
  std::vector<MoeOptions> cases;
  MoeOptions oss = base(8, 4);  // gpt-oss: biased router and experts, clamped SwiGLU
  oss.router_bias = true;
  oss.router_name = "router";
  oss.experts_name = "experts";
  oss.expert_bias = true;
  oss.expert_act = ExpertActivation::clamped_swiglu;
  oss.norm_topk_prob = false;
  cases.push_back(oss);
  // DeepSeek-V3: sigmoid scores in groups, a correction bias, a shared expert inside the
  // routed experts' calls (18 targets, then 9)
  MoeOptions ds = base(16, 8);
  ds.shared_intermediate = 64;
  ds.routing.scoring = MoeScoring::sigmoid;
  ds.routing.groups = 4;
  ds.routing.topk_groups = 2;
  ds.routing.routed_scaling = 2.5f;
  ds.correction_bias = "gate.e_score_correction_bias";
  cases.push_back(ds);
  MoeOptions l4 = base(4, 1);  // Llama 4: the weight scales the input
  l4.routing.scoring = MoeScoring::sigmoid;
  l4.weight_inputs = true;
  l4.norm_topk_prob = false;
  cases.push_back(l4);
  MoeOptions wide = base(20, 17);  // more targets than one region takes (32): separate calls
  wide.act = Activation::gelu_tanh;
  cases.push_back(wide);
  uint32_t seed = 7;
  for (const MoeOptions& o : cases) {
    const Built b = build(o, seed++);
    for (int t = 0; t < 3; ++t) {
      std::mt19937 rng(seed++);
      const Tensor x = random_tensor({1, 1, o.hidden}, rng, 1.0f);
      const Tensor got = b.moe->forward(x).contiguous();
      const std::vector<float> want = one_by_one(b, o, x.reshape({1, o.hidden}));
      ASSERT_EQ(got.numel(), o.hidden);
      double norm = 0.0;
      for (int64_t d = 0; d < o.hidden; ++d) {
        norm += std::fabs(want[static_cast<size_t>(d)]);
        ASSERT_EQ(std::bit_cast<uint32_t>(got.data<float>()[d]), std::bit_cast<uint32_t>(want[static_cast<size_t>(d)]))
            << "experts " << o.experts << " top " << o.top_k << " token " << t << " element " << d;
      }
      EXPECT_GT(norm, 0.0);  // the experts did contribute
    }
  }
}

}  // namespace
}  // namespace lmx::nn
