// ops::adam_step against (1) the same step composed of element-wise ops, bit for bit (what
// the optimizer ran before the op existed and still runs for non-f32 parameters), and (2)
// Adam's formulas written out in double precision, over several steps on random values,
// with and without bias correction and weight decay, a strided gradient, and bad operands.
#include "lmx/core/ops/optimizer.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "lmx/base/error.h"
#include "lmx/core/ops/elementwise.h"
#include "../test_util.h"

namespace lmx {
namespace {

using testing::random_tensor;

// Adam as element-wise ops, in the order and with the scalar operands of the optimizer's
// composed path (lmx/train/optimizer.cpp).
Tensor composed_step(const Tensor& w, const Tensor& g, Tensor& m, Tensor& v, const ops::AdamStepScalars& s) {
  m = ops::add(ops::mul(m, s.beta1), ops::mul(g, 1.0 - s.beta1));
  v = ops::add(ops::mul(v, s.beta2), ops::mul(ops::square(g), 1.0 - s.beta2));
  Tensor mhat = s.m_divisor != 1.0 ? ops::div(m, s.m_divisor) : m;
  Tensor vhat = s.v_divisor != 1.0 ? ops::div(v, s.v_divisor) : v;
  Tensor wd = s.decay != 1.0 ? ops::mul(w, s.decay) : w;
  Tensor update = ops::div(mhat, ops::add(ops::sqrt(vhat), s.eps));
  return ops::sub(wd, ops::mul(update, s.lr));
}

void expect_same_bits(const Tensor& got, const Tensor& want) {
  const auto a = got.to_float_vector(), b = want.to_float_vector();
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) ASSERT_EQ(std::memcmp(&a[i], &b[i], 4), 0) << "at " << i << ": " << a[i] << " vs " << b[i];
}

TEST(AdamStep, EqualsTheComposedStepBitForBitAndAdamsFormulas) {
  const double b1 = 0.9, b2 = 0.999, lr = 3e-3, wd = 0.01, eps = 1e-8;
  for (bool correct : {false, true}) {
    for (bool decay : {false, true}) {
      SCOPED_TRACE(std::string(correct ? "bias correction" : "no correction") + (decay ? ", decay" : ""));
      Tensor w = random_tensor({37, 29}, 1), w_ref = w;
      Tensor m = Tensor::zeros(w.shape()), v = Tensor::zeros(w.shape());
      Tensor m_ref = m.clone(), v_ref = v.clone();
      const std::vector<float> w0 = w.to_float_vector();
      std::vector<double> wd64(w0.begin(), w0.end()), md(wd64.size()), vd(wd64.size());
      for (int t = 1; t <= 5; ++t) {
        // Gradients of mixed scale, a few exact zeros, every sign.
        Tensor g = ops::mul(random_tensor({37, 29}, 10 + t), std::pow(10.0, t - 3));
        ops::AdamStepScalars s;
        s.beta1 = b1, s.beta2 = b2, s.lr = lr, s.eps = eps;
        if (correct) s.m_divisor = 1.0 - std::pow(b1, t), s.v_divisor = 1.0 - std::pow(b2, t);
        if (decay) s.decay = 1.0 - lr * wd;
        w = ops::adam_step(w, g, m, v, s);
        w_ref = composed_step(w_ref, g, m_ref, v_ref, s);
        expect_same_bits(m, m_ref);
        expect_same_bits(v, v_ref);
        expect_same_bits(w, w_ref);
        const auto gv = g.to_float_vector();
        for (size_t i = 0; i < wd64.size(); ++i) {
          md[i] = b1 * md[i] + (1 - b1) * gv[i];
          vd[i] = b2 * vd[i] + (1 - b2) * gv[i] * gv[i];
          const double mh = correct ? md[i] / (1 - std::pow(b1, t)) : md[i];
          const double vh = correct ? vd[i] / (1 - std::pow(b2, t)) : vd[i];
          wd64[i] = wd64[i] * (decay ? 1 - lr * wd : 1.0) - lr * mh / (std::sqrt(vh) + eps);
        }
      }
      const auto got = w.to_float_vector();
      for (size_t i = 0; i < got.size(); ++i) ASSERT_NEAR(got[i], wd64[i], 1e-5 * (1 + std::fabs(wd64[i]))) << "at " << i;
    }
  }
}

TEST(AdamStep, TakesAStridedGradientAndRefusesBadOperands) {
  Tensor w = random_tensor({8, 6}, 3);
  Tensor gt = random_tensor({6, 8}, 4);
  Tensor g = gt.transpose(0, 1);  // strided
  Tensor m = Tensor::zeros(w.shape()), v = Tensor::zeros(w.shape());
  Tensor m_ref = m.clone(), v_ref = v.clone();
  ops::AdamStepScalars s;
  s.lr = 1e-2;
  expect_same_bits(ops::adam_step(w, g, m, v, s), composed_step(w, g.contiguous(), m_ref, v_ref, s));
  Tensor bad = random_tensor({8, 5}, 5);
  EXPECT_THROW(ops::adam_step(w, bad, m, v, s), ShapeError);
  Tensor half = w.to(Dtype::bf16);
  EXPECT_THROW(ops::adam_step(half, g, m, v, s), InvalidArgument);
  Tensor strided_m = Tensor::zeros({6, 8}).transpose(0, 1);
  EXPECT_THROW(ops::adam_step(w, g, strided_m, v, s), InvalidArgument);
  Tensor undefined;
  EXPECT_THROW(ops::adam_step(w, undefined, m, v, s), InvalidArgument);
}

}  // namespace
}  // namespace lmx
