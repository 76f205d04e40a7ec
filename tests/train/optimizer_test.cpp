// Optimizer updates, clipping and schedules against the formulas of mlx.optimizers,
// computed here in double.
#include <gtest/gtest.h>

#include <cmath>

#include "lmx/base/error.h"
#include "lmx/train/optimizer.h"
#include "tests/core/test_util.h"

namespace lmx {
namespace {

using autograd::Var;

struct Case {
  std::vector<float> w0;
  std::vector<std::vector<float>> grads;  // one per step
};

Case make_case() {
  Case c;
  c.w0 = testing::random_floats(7, 1);
  for (uint32_t s = 0; s < 3; ++s) c.grads.push_back(testing::random_floats(7, 10 + s));
  return c;
}

std::vector<float> run(train::OptimizerOptions o, const Case& c, float lr) {
  Var p(Tensor::from_vector(c.w0, {7}), true);
  train::Optimizer opt({&p}, o);
  for (const auto& g : c.grads) {
    p.set_grad(Tensor::from_vector(g, {7}));
    opt.step(lr);
    opt.zero_grad();
  }
  return p.value().to_float_vector();
}

TEST(Optimizer, AdamAndAdamWFollowMlx) {
  const Case c = make_case();
  for (bool adamw : {false, true}) {
    for (bool correction : {false, true}) {
      train::OptimizerOptions o;
      o.kind = adamw ? train::OptimizerKind::adamw : train::OptimizerKind::adam;
      o.weight_decay = 0.1f;
      o.bias_correction = correction;
      const double lr = 0.05, b1 = 0.9, b2 = 0.999, eps = 1e-8;
      std::vector<float> got = run(o, c, static_cast<float>(lr));
      for (size_t i = 0; i < 7; ++i) {
        double w = c.w0[i], m = 0, v = 0;
        for (size_t t = 0; t < c.grads.size(); ++t) {
          const double g = c.grads[t][i];
          m = b1 * m + (1 - b1) * g;
          v = b2 * v + (1 - b2) * g * g;
          double mh = m, vh = v;
          if (correction) {
            mh /= 1 - std::pow(b1, static_cast<double>(t + 1));
            vh /= 1 - std::pow(b2, static_cast<double>(t + 1));
          }
          if (adamw) w *= 1 - lr * 0.1;
          w -= lr * mh / (std::sqrt(vh) + eps);
        }
        EXPECT_NEAR(got[i], w, 1e-5) << "adamw " << adamw << " correction " << correction << " at " << i;
      }
    }
  }
}

TEST(Optimizer, SgdWithMomentum) {
  const Case c = make_case();
  train::OptimizerOptions o;
  o.kind = train::OptimizerKind::sgd;
  o.momentum = 0.8f;
  std::vector<float> got = run(o, c, 0.1f);
  for (size_t i = 0; i < 7; ++i) {
    double w = c.w0[i], v = 0;
    for (const auto& g : c.grads) {
      v = 0.8 * v + g[i];
      w -= 0.1 * v;
    }
    EXPECT_NEAR(got[i], w, 1e-5);
  }
}

TEST(Optimizer, ClipGradNormScalesToTheLimit) {
  Var a(testing::random_tensor({3, 4}, 1), true), b(testing::random_tensor({5}, 2), true);
  a.set_grad(testing::random_tensor({3, 4}, 3));
  b.set_grad(testing::random_tensor({5}, 4));
  double sq = 0;
  for (float v : a.grad().to_float_vector()) sq += v * v;
  for (float v : b.grad().to_float_vector()) sq += v * v;
  const auto before = a.grad().to_float_vector();
  const double norm = train::clip_grad_norm({&a, &b}, 0.5);
  EXPECT_NEAR(norm, std::sqrt(sq), 1e-4);
  const auto after = a.grad().to_float_vector();
  for (size_t i = 0; i < before.size(); ++i) EXPECT_NEAR(after[i], before[i] * 0.5 / std::sqrt(sq), 1e-6);
  EXPECT_NEAR(train::clip_grad_norm({&a, &b}, 10.0), 0.5, 1e-5);  // under the limit: unchanged
}

TEST(Schedule, WarmupThenCosineOrLinear) {
  train::Schedule s{train::ScheduleKind::cosine, 1e-3f, 10, 110, 1e-5f};
  EXPECT_FLOAT_EQ(s.at(0), 1e-4f);
  EXPECT_FLOAT_EQ(s.at(9), 1e-3f);
  EXPECT_FLOAT_EQ(s.at(10), 1e-3f);
  EXPECT_NEAR(s.at(60), 1e-5 + 0.5 * (1e-3 - 1e-5), 1e-9);
  EXPECT_NEAR(s.at(110), 1e-5, 1e-9);
  s.kind = train::ScheduleKind::linear;
  EXPECT_NEAR(s.at(35), 1e-3 + (1e-5 - 1e-3) * 0.25, 1e-9);
  s.kind = train::ScheduleKind::constant;
  EXPECT_FLOAT_EQ(s.at(100), 1e-3f);
  EXPECT_THROW(train::parse_schedule("exp"), InvalidArgument);
  EXPECT_THROW(train::parse_optimizer("adafactor"), InvalidArgument);
}

}  // namespace
}  // namespace lmx
