// Backward of the neural-network functions: rms_norm, RoPE, attention, SwiGLU, dropout,
// cross-entropy. Forwards run the fused ops (the same kernels inference uses); backwards
// are composed of lmx::ops and recompute what they need (attention probabilities) from
// the saved inputs rather than keeping [L, L] buffers alive between the passes.
#include <limits>
#include <string>

#include "lmx/base/error.h"
#include "lmx/core/autograd/functions.h"
#include "lmx/core/ops/elementwise.h"
#include "lmx/core/ops/index.h"
#include "lmx/core/ops/linalg.h"
#include "lmx/core/ops/random.h"
#include "lmx/core/ops/reduce.h"
#include "lmx/core/ops/shape.h"

namespace lmx::autograd {
namespace {

Tensor as_f32(const Tensor& t) { return t.dtype() == Dtype::f32 ? t : t.to(Dtype::f32); }
Tensor mT(const Tensor& t) { return t.transpose(-2, -1); }

// 0 where key j is visible to query i (j <= i), -inf elsewhere: [L, S].
Tensor causal_mask(int64_t L, int64_t S, Device device) {
  std::vector<float> m(static_cast<size_t>(L * S), 0.0f);
  for (int64_t i = 0; i < L; ++i)
    for (int64_t j = i + 1; j < S; ++j) m[static_cast<size_t>(i * S + j)] = -std::numeric_limits<float>::infinity();
  return Tensor::from_vector(m, {L, S}).to(device);
}

}  // namespace

Var rms_norm(const Var& x, const Var& weight, float eps, bool add_unit_offset) {
  Tensor xv = as_f32(x.value()), wv = weight.value();
  Shape sw = weight.shape();
  return Var::from_op(
      ops::rms_norm(xv, wv, eps, add_unit_offset), {&x, &weight},
      [xv, wv, sw, eps, add_unit_offset](const Tensor& g, const std::vector<bool>& needs) {
        // n = x * r with r = rsqrt(mean(x^2) + eps); y = n * w_eff.
        Tensor r = ops::rsqrt(ops::add(ops::mean(ops::square(xv), -1, true), static_cast<double>(eps)));
        Tensor n = ops::mul(xv, r);
        std::vector<Tensor> out(2);
        if (needs[0]) {
          Tensor dn = g;
          if (wv.defined()) dn = ops::mul(g, add_unit_offset ? ops::add(as_f32(wv), 1.0) : as_f32(wv));
          // dx = r * (dn - n * mean(dn * n))
          out[0] = ops::mul(r, ops::sub(dn, ops::mul(n, ops::mean(ops::mul(dn, n), -1, true))));
        }
        if (needs[1]) out[1] = sum_to(ops::mul(g, n), sw);
        return out;
      });
}

Var rope(const Var& x, const ops::RopeParams& params) {
  ops::RopeParams inverse = params;
  // The rotation's adjoint is the rotation by the opposite angle: negated frequencies
  // (cos even, sin odd); mscale and the pass-through dims are unchanged.
  inverse.inv_freq = ops::neg(params.inv_freq);
  return Var::from_op(ops::rope(x.value(), params), {&x}, [inverse](const Tensor& g, const std::vector<bool>&) {
    return std::vector<Tensor>{ops::rope(g, inverse)};
  });
}

Var scaled_dot_product_attention(const Var& q, const Var& k, const Var& v, float scale, bool causal) {
  Tensor qv = as_f32(q.value()), kv = as_f32(k.value()), vv = as_f32(v.value());
  if (qv.ndim() != 4 || kv.ndim() != 4 || vv.ndim() != 4) {
    throw ShapeError("autograd attention: q, k, v must be [B, H, L, D]");
  }
  const int64_t hq = qv.dim(1), hkv = kv.dim(1);
  if (hkv <= 0 || hq % hkv != 0) {
    throw ShapeError("autograd attention: " + std::to_string(hq) + " query heads for " + std::to_string(hkv) +
                     " kv heads");
  }
  ops::AttentionParams p;
  p.scale = scale;
  p.causal = causal;
  Tensor out = ops::scaled_dot_product_attention(qv, kv, vv, p);
  return Var::from_op(out, {&q, &k, &v}, [qv, kv, vv, scale, causal](const Tensor& dO, const std::vector<bool>& needs) {
    const int64_t B = kv.dim(0), Hkv = kv.dim(1), S = kv.dim(2), G = qv.dim(1) / Hkv;
    Tensor kr = ops::repeat_interleave(kv, G, 1), vr = ops::repeat_interleave(vv, G, 1);  // [B, Hq, S, D]
    Tensor scores = ops::mul(ops::matmul(qv, mT(kr)), static_cast<double>(scale));       // [B, Hq, L, S]
    if (causal) scores = ops::add(scores, causal_mask(qv.dim(2), S, qv.device()));
    Tensor P = ops::softmax(scores, -1);
    Tensor dP = ops::matmul(dO, mT(vr));
    Tensor dS = ops::mul(P, ops::sub(dP, ops::sum(ops::mul(dP, P), -1, true)));
    std::vector<Tensor> g(3);
    auto fold_groups = [&](const Tensor& t) {  // [B, Hq, S, D] -> [B, Hkv, S, D]
      return ops::sum(t.contiguous().reshape({B, Hkv, G, S, t.dim(-1)}), 2);
    };
    if (needs[0]) g[0] = ops::mul(ops::matmul(dS, kr), static_cast<double>(scale));
    if (needs[1]) g[1] = fold_groups(ops::mul(ops::matmul(mT(dS), qv), static_cast<double>(scale)));
    if (needs[2]) g[2] = fold_groups(ops::matmul(mT(P), dO));
    return g;
  });
}

Var silu_mul(const Var& gate, const Var& up) {
  Tensor gv = as_f32(gate.value()), uv = as_f32(up.value());
  return Var::from_op(ops::gated_activation(ops::GatedActivation::silu, gv, uv), {&gate, &up},
                      [gv, uv](const Tensor& g, const std::vector<bool>& needs) {
                        Tensor s = ops::sigmoid(gv);
                        std::vector<Tensor> out(2);
                        if (needs[0]) {
                          // silu'(x) = s (1 + x (1 - s))
                          Tensor ds = ops::mul(s, ops::add(ops::mul(gv, ops::sub(Tensor::full({}, 1.0), s)), 1.0));
                          out[0] = ops::mul(ops::mul(g, uv), ds);
                        }
                        if (needs[1]) out[1] = ops::mul(g, ops::mul(gv, s));
                        return out;
                      });
}

Var dropout(const Var& x, float p, ops::RandomGenerator& rng) {
  if (p < 0.0f || p >= 1.0f) throw InvalidArgument("dropout: p must be in [0, 1), got " + std::to_string(p));
  if (p == 0.0f) return x;
  Tensor u = rng.uniform(x.shape());
  Tensor keep = ops::mul(ops::compare(ops::CompareOp::ge, u, Tensor::full({}, p)).to(Dtype::f32),
                         1.0 / (1.0 - static_cast<double>(p)))
                    .to(x.value().device());
  return Var::from_op(ops::mul(as_f32(x.value()), keep), {&x}, [keep](const Tensor& g, const std::vector<bool>&) {
    return std::vector<Tensor>{ops::mul(g, keep)};
  });
}

Var cross_entropy(const Var& logits, const Tensor& targets, const Tensor& weights) {
  Tensor lv = as_f32(logits.value());
  if (lv.ndim() != 2) throw ShapeError("cross_entropy: logits must be [N, vocab], got " + shape_str(lv.shape()));
  const int64_t N = lv.dim(0), V = lv.dim(1);
  if (targets.numel() != N || weights.numel() != N) {
    throw ShapeError("cross_entropy: " + std::to_string(N) + " rows of logits, " + std::to_string(targets.numel()) +
                     " targets, " + std::to_string(weights.numel()) + " weights");
  }
  Tensor t = targets.reshape({N, 1}).to(Dtype::i64);
  Tensor w = as_f32(weights).reshape({N});
  const double total = ops::sum_all(w).item<double>();
  if (!(total > 0.0)) throw InvalidArgument("cross_entropy: no position has a positive weight");
  Tensor nll = ops::sub(ops::logsumexp(lv, -1), ops::take_along_last_axis(lv, t).reshape({N}));  // [N]
  Tensor loss = ops::div(ops::sum_all(ops::mul(nll, w)), total);
  return Var::from_op(loss, {&logits}, [lv, t, w, total, V](const Tensor& g, const std::vector<bool>&) {
    Tensor range = Tensor::arange(V, Dtype::i64).reshape({1, V}).to(lv.device());
    Tensor onehot = ops::compare(ops::CompareOp::eq, t.to(lv.device()), range).to(Dtype::f32);
    Tensor coef = ops::mul(ops::div(w, total).reshape({-1, 1}), g);  // [N, 1]
    return std::vector<Tensor>{ops::mul(ops::sub(ops::softmax(lv, -1), onehot), coef)};
  });
}

}  // namespace lmx::autograd
