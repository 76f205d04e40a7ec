#include "lmx/train/optimizer.h"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "lmx/base/error.h"
#include "lmx/core/ops/elementwise.h"
#include "lmx/core/ops/optimizer.h"
#include "lmx/core/ops/reduce.h"

namespace lmx::train {

OptimizerKind parse_optimizer(const std::string& name) {
  if (name == "sgd") return OptimizerKind::sgd;
  if (name == "adam") return OptimizerKind::adam;
  if (name == "adamw") return OptimizerKind::adamw;
  if (name == "adafactor") return OptimizerKind::adafactor;
  throw InvalidArgument("optimizer: unknown '" + name + "' (sgd, adam, adamw, adafactor)");
}

ScheduleKind parse_schedule(const std::string& name) {
  if (name == "constant") return ScheduleKind::constant;
  if (name == "linear") return ScheduleKind::linear;
  if (name == "cosine") return ScheduleKind::cosine;
  throw InvalidArgument("lr schedule: unknown '" + name + "' (constant, linear, cosine)");
}

Optimizer::Optimizer(std::vector<autograd::Var*> params, OptimizerOptions options)
    : params_(std::move(params)), o_(options), m_(params_.size()), v_(params_.size()), f_(params_.size()) {}

void Optimizer::zero_grad() {
  for (auto* p : params_) p->zero_grad();
}

void Optimizer::step(float lr) {
  ++t_;
  const double a = lr;
  for (size_t i = 0; i < params_.size(); ++i) {
    autograd::Var& p = *params_[i];
    Tensor g = p.grad();
    if (!g.defined()) continue;
    Tensor w = p.value();
    if (o_.kind == OptimizerKind::adafactor) {
      adafactor_step(i, p, g, a);
      continue;
    }
    if (o_.kind == OptimizerKind::sgd) {
      if (o_.momentum != 0.0f) {
        // MLX: v = momentum * v + g (no dampening); w -= lr * v.
        m_[i] = m_[i].defined() ? ops::add(ops::mul(m_[i], static_cast<double>(o_.momentum)), g) : g;
        g = m_[i];
      }
      p.set_value(ops::sub(w, ops::mul(g, a)));
      continue;
    }
    const double b1 = o_.beta1, b2 = o_.beta2;
    if (w.dtype() == Dtype::f32 && g.dtype() == Dtype::f32) {  // one op, the same values as the steps below
      if (!m_[i].defined()) m_[i] = Tensor::zeros(w.shape(), Dtype::f32, w.device());
      if (!v_[i].defined()) v_[i] = Tensor::zeros(w.shape(), Dtype::f32, w.device());
      ops::AdamStepScalars s;
      s.beta1 = b1, s.beta2 = b2, s.eps = o_.eps, s.lr = a;
      if (o_.bias_correction) {
        s.m_divisor = 1.0 - std::pow(b1, static_cast<double>(t_));
        s.v_divisor = 1.0 - std::pow(b2, static_cast<double>(t_));
      }
      if (o_.kind == OptimizerKind::adamw && o_.weight_decay != 0.0f) s.decay = 1.0 - a * o_.weight_decay;
      p.set_value(ops::adam_step(w, g, m_[i], v_[i], s));
      continue;
    }
    Tensor m = m_[i].defined() ? m_[i] : Tensor::zeros(w.shape(), Dtype::f32, w.device());
    Tensor v = v_[i].defined() ? v_[i] : Tensor::zeros(w.shape(), Dtype::f32, w.device());
    m_[i] = ops::add(ops::mul(m, b1), ops::mul(g, 1.0 - b1));
    v_[i] = ops::add(ops::mul(v, b2), ops::mul(ops::square(g), 1.0 - b2));
    Tensor mhat = m_[i], vhat = v_[i];
    if (o_.bias_correction) {
      mhat = ops::div(mhat, 1.0 - std::pow(b1, static_cast<double>(t_)));
      vhat = ops::div(vhat, 1.0 - std::pow(b2, static_cast<double>(t_)));
    }
    if (o_.kind == OptimizerKind::adamw && o_.weight_decay != 0.0f) {
      w = ops::mul(w, 1.0 - a * static_cast<double>(o_.weight_decay));
    }
    Tensor update = ops::div(mhat, ops::add(ops::sqrt(vhat), static_cast<double>(o_.eps)));
    p.set_value(ops::sub(w, ops::mul(update, a)));
  }
}

namespace {
double rms(const Tensor& x) { return std::sqrt(ops::mean(ops::square(x).flatten(), 0).item<double>()); }
}  // namespace

void Optimizer::adafactor_step(size_t i, autograd::Var& p, const Tensor& g, double lr) {
  const Tensor w = p.value().to(Dtype::f32);
  if (w.ndim() > 2) throw InvalidArgument("adafactor: parameters of more than 2 dimensions are not supported");
  const double t = static_cast<double>(t_);
  const double step_size = o_.relative_step ? std::min(1e-2, 1.0 / std::sqrt(t)) : lr;
  const double rate = step_size * (o_.scale_parameter ? std::max(static_cast<double>(o_.eps2), rms(w)) : 1.0);
  const double beta2 = 1.0 - std::pow(t, static_cast<double>(o_.decay_rate));
  const Tensor sq = ops::add(ops::square(g), static_cast<double>(o_.eps1));
  auto decay = [&](const Tensor& old, const Tensor& now) {
    return old.defined() ? ops::add(ops::mul(old, beta2), ops::mul(now, 1.0 - beta2)) : ops::mul(now, 1.0 - beta2);
  };
  Tensor update;
  if (w.ndim() == 2) {  // factored: row and column means of g^2
    m_[i] = decay(m_[i], ops::mean(sq, 1));  // [rows]
    v_[i] = decay(v_[i], ops::mean(sq, 0));  // [cols]
    Tensor r = ops::rsqrt(ops::div(m_[i], ops::mean(m_[i], 0).item<double>()));
    Tensor c = ops::rsqrt(v_[i]);
    update = ops::mul(ops::mul(r.reshape({-1, 1}), c.reshape({1, -1})), g);
  } else {
    m_[i] = decay(m_[i], sq);
    update = ops::mul(ops::rsqrt(m_[i]), g);
  }
  update = ops::mul(update, rate / std::max(1.0, rms(update) / static_cast<double>(o_.clip_threshold)));
  if (o_.adafactor_beta1 > 0.0f) {
    const double b1 = o_.adafactor_beta1;
    f_[i] = f_[i].defined() ? ops::add(ops::mul(f_[i], b1), ops::mul(update, 1.0 - b1)) : ops::mul(update, 1.0 - b1);
    update = f_[i];
  }
  Tensor nw = o_.weight_decay != 0.0f ? ops::mul(w, 1.0 - static_cast<double>(o_.weight_decay) * rate) : w;
  p.set_value(ops::sub(nw, update));
}

double clip_grad_norm(const std::vector<autograd::Var*>& params, double max_norm,
                      const std::function<double()>& squared_norm) {
  double sq = 0.0;
  if (squared_norm) {
    sq = squared_norm();
  } else {
    for (auto* p : params) {
      if (p->grad().defined()) sq += ops::sum_all(ops::square(p->grad())).item<double>();
    }
  }
  const double norm = std::sqrt(sq);
  if (max_norm > 0.0 && norm > max_norm) {
    const double s = max_norm / norm;
    for (auto* p : params) {
      if (!p->grad().defined()) continue;
      p->set_grad(ops::mul(p->grad(), s));
    }
  }
  return norm;
}

float Schedule::at(int64_t step) const {
  if (warmup > 0 && step < warmup) return peak * static_cast<float>(step + 1) / static_cast<float>(warmup);
  const int64_t span = std::max<int64_t>(1, total - warmup);
  const double frac = std::clamp(static_cast<double>(step - warmup) / static_cast<double>(span), 0.0, 1.0);
  switch (kind) {
    case ScheduleKind::constant: return peak;
    case ScheduleKind::linear: return static_cast<float>(peak + (final_lr - peak) * frac);
    case ScheduleKind::cosine:
      return static_cast<float>(final_lr + 0.5 * (peak - final_lr) * (1.0 + std::cos(std::numbers::pi * frac)));
  }
  return peak;
}

}  // namespace lmx::train
