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

// mlx.optimizers.Adafactor in double: a [3, 5] matrix (factored second moments) and a [4]
// vector, 4 steps, with and without relative steps, first moment and weight decay.
struct AdafactorRef {
  train::OptimizerOptions o;
  double lr;
  int rows, cols;  // cols 0: a vector of `rows`
  std::vector<double> w, row, col, full, first;
  int t = 0;
  static double rms(const std::vector<double>& x) {
    double s = 0;
    for (double v : x) s += v * v;
    return std::sqrt(s / static_cast<double>(x.size()));
  }
  void step(const std::vector<float>& gf) {
    ++t;
    const size_t n = w.size();
    const double step_size = o.relative_step ? std::min(1e-2, 1.0 / std::sqrt(double(t))) : lr;
    const double rate = step_size * (o.scale_parameter ? std::max(double(o.eps2), rms(w)) : 1.0);
    const double b2 = 1.0 - std::pow(double(t), double(o.decay_rate));
    std::vector<double> g(gf.begin(), gf.end()), u(n);
    if (cols > 0) {
      row.resize(size_t(rows)), col.resize(size_t(cols));
      for (int r = 0; r < rows; ++r) {
        double m = 0;
        for (int c = 0; c < cols; ++c) m += g[size_t(r * cols + c)] * g[size_t(r * cols + c)] + o.eps1;
        row[size_t(r)] = b2 * row[size_t(r)] + (1 - b2) * m / cols;
      }
      for (int c = 0; c < cols; ++c) {
        double m = 0;
        for (int r = 0; r < rows; ++r) m += g[size_t(r * cols + c)] * g[size_t(r * cols + c)] + o.eps1;
        col[size_t(c)] = b2 * col[size_t(c)] + (1 - b2) * m / rows;
      }
      double row_mean = 0;
      for (double v : row) row_mean += v / rows;
      for (int r = 0; r < rows; ++r)
        for (int c = 0; c < cols; ++c)
          u[size_t(r * cols + c)] = g[size_t(r * cols + c)] / std::sqrt(row[size_t(r)] / row_mean) / std::sqrt(col[size_t(c)]);
    } else {
      full.resize(n);
      for (size_t i = 0; i < n; ++i) {
        full[i] = b2 * full[i] + (1 - b2) * (g[i] * g[i] + o.eps1);
        u[i] = g[i] / std::sqrt(full[i]);
      }
    }
    const double clip = std::max(1.0, rms(u) / o.clip_threshold);
    for (double& v : u) v = rate * v / clip;
    if (o.adafactor_beta1 > 0) {
      first.resize(n);
      for (size_t i = 0; i < n; ++i) u[i] = first[i] = o.adafactor_beta1 * first[i] + (1 - o.adafactor_beta1) * u[i];
    }
    for (size_t i = 0; i < n; ++i) w[i] = w[i] - w[i] * o.weight_decay * rate - u[i];
  }
};

TEST(Optimizer, AdafactorFollowsMlx) {
  for (int variant = 0; variant < 3; ++variant) {
    train::OptimizerOptions o;
    o.kind = train::OptimizerKind::adafactor;
    o.weight_decay = variant == 2 ? 0.1f : 0.0f;
    o.relative_step = variant == 1;
    o.adafactor_beta1 = variant == 2 ? 0.9f : 0.0f;
    o.clip_threshold = variant == 0 ? 0.5f : 1.0f;
    const float lr = 0.03f;
    Var mat(testing::random_tensor({3, 5}, 21), true), vec(testing::random_tensor({4}, 22), true);
    AdafactorRef rm{o, lr, 3, 5, {}, {}, {}, {}, {}}, rv{o, lr, 4, 0, {}, {}, {}, {}, {}};
    for (float v : mat.value().to_float_vector()) rm.w.push_back(v);
    for (float v : vec.value().to_float_vector()) rv.w.push_back(v);
    train::Optimizer opt({&mat, &vec}, o);
    for (uint32_t s = 0; s < 4; ++s) {
      mat.set_grad(testing::random_tensor({3, 5}, 30 + s));
      vec.set_grad(testing::random_tensor({4}, 40 + s));
      rm.step(mat.grad().to_float_vector());
      rv.step(vec.grad().to_float_vector());
      opt.step(lr);
      opt.zero_grad();
    }
    const auto gm = mat.value().to_float_vector(), gv = vec.value().to_float_vector();
    double moved = 0;
    for (size_t i = 0; i < gm.size(); ++i) {
      EXPECT_NEAR(gm[i], rm.w[i], 2e-6) << "variant " << variant << " matrix " << i;
      moved = std::max(moved, std::fabs(rm.w[i] - testing::random_floats(15, 21)[i]));
    }
    for (size_t i = 0; i < gv.size(); ++i) EXPECT_NEAR(gv[i], rv.w[i], 2e-6) << "variant " << variant << " vector " << i;
    EXPECT_GT(moved, 1e-3) << "variant " << variant;  // the updates did something
  }
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
  EXPECT_THROW(train::parse_optimizer("lion"), InvalidArgument);
}

}  // namespace
}  // namespace lmx
