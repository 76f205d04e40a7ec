// Backward of the neural-network functions: rms_norm, RoPE, attention (causal, windowed,
// soft-capped), gated activations, softmax, soft-capping, dropout, cross-entropy. Forwards run the fused ops (the same kernels inference uses); backwards
// are composed of lmx::ops and recompute what they need (attention probabilities) from
// the saved inputs rather than keeping [L, L] buffers alive between the passes.
#include <cmath>
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

// 1 - t on t's device (-t + 1 rounds as 1 - t does).
Tensor one_minus(const Tensor& t) { return ops::add(ops::neg(t), 1.0); }

// 0 where key j is visible to query i, -inf elsewhere: [L, S], or undefined when every
// key is visible. As the attention kernels: causal hides j > i, a window hides
// i - j >= window.
Tensor attention_mask(int64_t L, int64_t S, bool causal, int64_t window, Device device) {
  if (!causal && window <= 0) return Tensor();
  std::vector<float> m(static_cast<size_t>(L * S), 0.0f);
  for (int64_t i = 0; i < L; ++i)
    for (int64_t j = 0; j < S; ++j)
      if ((causal && j > i) || (window > 0 && i - j >= window))
        m[static_cast<size_t>(i * S + j)] = -std::numeric_limits<float>::infinity();
  return Tensor::from_vector(m, {L, S}).to(device);
}

Tensor activation(ops::GatedActivation act, const Tensor& x) {
  switch (act) {
    case ops::GatedActivation::silu: return ops::silu(x);
    case ops::GatedActivation::gelu: return ops::gelu(x);
    case ops::GatedActivation::gelu_tanh: return ops::gelu_tanh(x);
  }
  throw InternalError("autograd: unknown gated activation");
}

// d act(x) / dx of the gate activations.
Tensor activation_derivative(ops::GatedActivation act, const Tensor& x) {
  switch (act) {
    case ops::GatedActivation::silu: {  // s (1 + x (1 - s))
      Tensor s = ops::sigmoid(x);
      return ops::mul(s, ops::add(ops::mul(x, one_minus(s)), 1.0));
    }
    case ops::GatedActivation::gelu: {  // Phi(x) + x phi(x)
      Tensor cdf = ops::mul(ops::add(ops::erf(ops::mul(x, M_SQRT1_2)), 1.0), 0.5);
      Tensor pdf = ops::mul(ops::exp(ops::mul(ops::square(x), -0.5)), 0.5 * M_2_SQRTPI * M_SQRT1_2);
      return ops::add(cdf, ops::mul(x, pdf));
    }
    case ops::GatedActivation::gelu_tanh: {  // 0.5 (1 + t) + 0.5 x (1 - t^2) c (1 + 3 k x^2)
      const double c = std::sqrt(2.0 / M_PI), k = 0.044715;
      Tensor x2 = ops::square(x);
      Tensor t = ops::tanh(ops::mul(ops::mul(x, ops::add(ops::mul(x2, k), 1.0)), c));
      Tensor dt = ops::mul(one_minus(ops::square(t)), ops::mul(ops::add(ops::mul(x2, 3 * k), 1.0), c));
      return ops::mul(ops::add(ops::add(t, 1.0), ops::mul(x, dt)), 0.5);
    }
  }
  throw InternalError("autograd: unknown gated activation");
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

Var scaled_dot_product_attention(const Var& q, const Var& k, const Var& v, const ops::AttentionParams& p) {
  Tensor qv = as_f32(q.value()), kv = as_f32(k.value()), vv = as_f32(v.value());
  if (qv.ndim() != 4 || kv.ndim() != 4 || vv.ndim() != 4) {
    throw ShapeError("autograd attention: q, k, v must be [B, H, L, D]");
  }
  const int64_t hq = qv.dim(1), hkv = kv.dim(1);
  if (hkv <= 0 || hq % hkv != 0) {
    throw ShapeError("autograd attention: " + std::to_string(hq) + " query heads for " + std::to_string(hkv) +
                     " kv heads");
  }
  if (p.mask.defined() || p.sinks.defined() || p.q_offset != 0) {
    throw Unsupported("autograd attention: additive masks, sinks and query offsets have no backward yet");
  }
  const float scale = p.scale != 0.0f ? p.scale : 1.0f / std::sqrt(static_cast<float>(qv.dim(3)));
  const float cap = p.softcap;
  Tensor mask = attention_mask(qv.dim(2), kv.dim(2), p.causal, p.window, qv.device());
  ops::AttentionParams fp = p;
  fp.scale = scale;
  Tensor out = ops::scaled_dot_product_attention(qv, kv, vv, fp);
  return Var::from_op(out, {&q, &k, &v}, [qv, kv, vv, scale, cap, mask](const Tensor& dO, const std::vector<bool>& needs) {
    const int64_t B = kv.dim(0), Hkv = kv.dim(1), S = kv.dim(2), G = qv.dim(1) / Hkv;
    Tensor kr = ops::repeat_interleave(kv, G, 1), vr = ops::repeat_interleave(vv, G, 1);  // [B, Hq, S, D]
    Tensor scores = ops::mul(ops::matmul(qv, mT(kr)), static_cast<double>(scale));       // [B, Hq, L, S]
    Tensor t;  // soft-capping: scores = cap * tanh(raw / cap)
    if (cap > 0.0f) {
      t = ops::tanh(ops::div(scores, static_cast<double>(cap)));
      scores = ops::mul(t, static_cast<double>(cap));
    }
    if (mask.defined()) scores = ops::add(scores, mask);
    Tensor P = ops::softmax(scores, -1);
    Tensor dP = ops::matmul(dO, mT(vr));
    Tensor dS = ops::mul(P, ops::sub(dP, ops::sum(ops::mul(dP, P), -1, true)));
    if (t.defined()) dS = ops::mul(dS, one_minus(ops::square(t)));
    std::vector<Tensor> g(3);
    auto fold_groups = [&](const Tensor& x) {  // [B, Hq, S, D] -> [B, Hkv, S, D]
      return ops::sum(x.contiguous().reshape({B, Hkv, G, S, x.dim(-1)}), 2);
    };
    if (needs[0]) g[0] = ops::mul(ops::matmul(dS, kr), static_cast<double>(scale));
    if (needs[1]) g[1] = fold_groups(ops::mul(ops::matmul(mT(dS), qv), static_cast<double>(scale)));
    if (needs[2]) g[2] = fold_groups(ops::matmul(mT(P), dO));
    return g;
  });
}

Var gated_activation(ops::GatedActivation act, const Var& gate, const Var& up) {
  Tensor gv = as_f32(gate.value()), uv = as_f32(up.value());
  return Var::from_op(ops::gated_activation(act, gv, uv), {&gate, &up},
                      [act, gv, uv](const Tensor& g, const std::vector<bool>& needs) {
                        std::vector<Tensor> out(2);
                        if (needs[0]) out[0] = ops::mul(ops::mul(g, uv), activation_derivative(act, gv));
                        if (needs[1]) out[1] = ops::mul(g, activation(act, gv));
                        return out;
                      });
}

Var softmax(const Var& x) {
  Tensor y = ops::softmax(as_f32(x.value()), -1);
  return Var::from_op(y, {&x}, [y](const Tensor& g, const std::vector<bool>&) {
    // dx = y (g - sum(g y))
    return std::vector<Tensor>{ops::mul(y, ops::sub(g, ops::sum(ops::mul(g, y), -1, true)))};
  });
}

Var softcap(const Var& x, float cap) {
  if (!(cap > 0.0f)) throw InvalidArgument("softcap: the cap must be positive, got " + std::to_string(cap));
  Tensor t = ops::tanh(ops::div(as_f32(x.value()), static_cast<double>(cap)));
  return Var::from_op(ops::mul(t, static_cast<double>(cap)), {&x}, [t](const Tensor& g, const std::vector<bool>&) {
    return std::vector<Tensor>{ops::mul(g, one_minus(ops::square(t)))};
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
  const Device dev = lv.device();
  Tensor t = targets.reshape({N, 1}).to(Dtype::i64);
  Tensor w = as_f32(weights).reshape({N});
  const double total = ops::sum_all(w).item<double>();
  if (!(total > 0.0)) throw InvalidArgument("cross_entropy: no position has a positive weight");
  w = w.to(dev);
  // logits[r, t[r]] as a gather of single elements at r * V + t[r] (the ids checked on the
  // host, where the targets are; the logits stay on their device).
  std::vector<int64_t> at = t.to_int_vector();
  for (int64_t r = 0; r < N; ++r) {
    const int64_t id = at[static_cast<size_t>(r)];
    if (id < 0 || id >= V) {
      throw InvalidArgument("cross_entropy: target " + std::to_string(id) + " at position " + std::to_string(r) +
                            " is out of range [0, " + std::to_string(V) + ")");
    }
    at[static_cast<size_t>(r)] = r * V + id;
  }
  Tensor picked = ops::take(lv.reshape({N * V}), Tensor::from_vector(at, {N}), 0);
  Tensor lse = ops::logsumexp(lv, -1);  // [N]
  Tensor nll = ops::sub(lse, picked);
  Tensor loss = ops::div(ops::sum_all(ops::mul(nll, w)), total);
  return Var::from_op(loss, {&logits}, [lv, lse, t, w, total](const Tensor& g, const std::vector<bool>&) {
    // (softmax - onehot(t)) * w / total * g in one pass over the logits.
    Tensor coef = ops::mul(ops::div(w, total), g);  // [N]
    return std::vector<Tensor>{ops::cross_entropy_grad(lv, lse, t.reshape({-1}).to(lv.device()), coef)};
  });
}

}  // namespace lmx::autograd
