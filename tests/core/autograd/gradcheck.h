// Gradient checks against double precision: a reference forward written with plain
// double loops (independent of lmx's kernels), differentiated by central finite
// differences in double, compared with the autograd gradient of the f32 ops.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <vector>

#include "lmx/core/autograd/variable.h"
#include "tests/core/test_util.h"

namespace lmx::testing {

using Vecs = std::vector<std::vector<double>>;
using RefForward = std::function<std::vector<double>(const Vecs& inputs)>;

inline std::vector<double> doubles(const Tensor& t) {
  std::vector<float> f = t.to_float_vector();
  return {f.begin(), f.end()};
}

// Checks value and gradients of `out` (computed from `leaves` inside a GradScope) against
// `ref` over the same inputs. The loss is sum(out * seed) for a random seed.
inline void expect_gradients_match(const autograd::Var& out,
                                   const std::vector<autograd::Var>& leaves,
                                   const RefForward& ref,
                                   double rel = 2e-4,
                                   double abs = 2e-5) {
  Vecs inputs;
  for (const auto& l : leaves) inputs.push_back(doubles(l.value()));
  const std::vector<double> want = ref(inputs);
  const std::vector<double> got = doubles(out.value());
  ASSERT_EQ(got.size(), want.size());
  double scale = 1e-3;
  for (double w : want) scale = std::max(scale, std::fabs(w));
  for (size_t i = 0; i < want.size(); ++i) ASSERT_NEAR(got[i], want[i], 1e-5 * scale) << "value " << i;

  Tensor seed = random_tensor(out.shape(), 4242, Dtype::f32, -1.0f, 1.0f);
  const std::vector<double> r = doubles(seed);
  autograd::backward(out, seed);
  auto loss = [&](const Vecs& in) {
    std::vector<double> y = ref(in);
    double s = 0;
    for (size_t i = 0; i < y.size(); ++i) s += y[i] * r[i];
    return s;
  };
  for (size_t li = 0; li < leaves.size(); ++li) {
    if (!leaves[li].requires_grad()) continue;
    ASSERT_TRUE(leaves[li].grad().defined()) << "leaf " << li << " got no gradient";
    const std::vector<double> g = doubles(leaves[li].grad());
    ASSERT_EQ(g.size(), inputs[li].size());
    std::vector<double> num(g.size());
    double gscale = 1e-2;
    for (size_t i = 0; i < g.size(); ++i) {
      Vecs in = inputs;
      const double h = 1e-6 * std::max(1.0, std::fabs(inputs[li][i]));
      in[li][i] = inputs[li][i] + h;
      const double up = loss(in);
      in[li][i] = inputs[li][i] - h;
      num[i] = (up - loss(in)) / (2 * h);
      gscale = std::max(gscale, std::fabs(num[i]));
    }
    for (size_t i = 0; i < g.size(); ++i) {
      ASSERT_NEAR(g[i], num[i], abs * gscale + rel * std::fabs(num[i])) << "leaf " << li << " element " << i;
    }
  }
}

}  // namespace lmx::testing
