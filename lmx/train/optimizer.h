// Optimizers over autograd leaves, as MLX's (mlx.optimizers) define them: SGD (with
// momentum), Adam and AdamW (no bias correction unless asked, MLX's default), Adafactor
// (factored second moments for matrices), plus gradient clipping by global norm. The update is made of
// lmx::ops, so it runs where the parameters live; Adam / AdamW on f32 parameters is one op
// (ops::adam_step), others a composition of element-wise ops.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "lmx/core/autograd/variable.h"

namespace lmx::train {

enum class OptimizerKind { sgd, adam, adamw, adafactor };
// "sgd", "adam", "adamw", "adafactor"; InvalidArgument naming the value otherwise.
OptimizerKind parse_optimizer(const std::string& name);

struct OptimizerOptions {
  OptimizerKind kind = OptimizerKind::adam;
  float beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f;
  float weight_decay = 0.01f;  // AdamW (decoupled: p -= lr * wd * p) and Adafactor
  float momentum = 0.0f;       // SGD only
  bool bias_correction = false;
  // Adafactor (mlx.optimizers.Adafactor's parameters): the step size is lr (or, with
  // relative_step, min(1e-2, 1/sqrt(t))) times max(eps2, rms(p)) when scale_parameter;
  // second moments decay with beta2 = 1 - t^decay_rate; the update's rms is clipped to
  // clip_threshold; beta1 > 0 adds a first moment.
  bool relative_step = false;
  bool scale_parameter = true;
  float eps1 = 1e-30f, eps2 = 1e-3f;
  float clip_threshold = 1.0f;
  float decay_rate = -0.8f;
  float adafactor_beta1 = 0.0f;
};

class Optimizer {
 public:
  Optimizer(std::vector<autograd::Var*> params, OptimizerOptions options);
  // One update of every parameter that has a gradient, at learning rate lr.
  void step(float lr);
  void zero_grad();
  int64_t steps() const { return t_; }

 private:
  std::vector<autograd::Var*> params_;
  OptimizerOptions o_;
  void adafactor_step(size_t i, autograd::Var& p, const Tensor& g, double lr);
  std::vector<Tensor> m_, v_;  // first / second moments (or SGD velocity in m_; Adafactor's row / col
                               // or full second moments)
  std::vector<Tensor> f_;      // Adafactor's first moment
  int64_t t_ = 0;
};

// Scales every gradient by min(1, max_norm / total norm); returns the norm before clipping.
// `squared_norm`, when given, is the total's square (a split model's: over every rank's).
double clip_grad_norm(const std::vector<autograd::Var*>& params, double max_norm,
                      const std::function<double()>& squared_norm = nullptr);

// Learning rate at a step: linear warmup from 0 over `warmup` steps, then constant, linear
// decay or cosine decay to `final_lr` at `total` steps.
enum class ScheduleKind { constant, linear, cosine };
ScheduleKind parse_schedule(const std::string& name);

struct Schedule {
  ScheduleKind kind = ScheduleKind::constant;
  float peak = 1e-5f;
  int64_t warmup = 0;
  int64_t total = 1;
  float final_lr = 0.0f;
  // step counts from 0 (the first update).
  float at(int64_t step) const;
};

}  // namespace lmx::train
