#include "lmx/core/ops/elementwise.h"

#include <gtest/gtest.h>

#include <cmath>

#include "lmx/base/error.h"
#include "../test_util.h"

namespace lmx {
namespace {

using testing::at;
using testing::random_tensor;

// Independent per-element references in double precision.
double ref_unary(ops::UnaryOp op, double x) {
  switch (op) {
    case ops::UnaryOp::neg: return -x;
    case ops::UnaryOp::abs: return std::fabs(x);
    case ops::UnaryOp::square: return x * x;
    case ops::UnaryOp::exp: return std::exp(x);
    case ops::UnaryOp::log: return std::log(x);
    case ops::UnaryOp::sqrt: return std::sqrt(x);
    case ops::UnaryOp::rsqrt: return 1.0 / std::sqrt(x);
    case ops::UnaryOp::tanh: return std::tanh(x);
    case ops::UnaryOp::sigmoid: return 1.0 / (1.0 + std::exp(-x));
    case ops::UnaryOp::silu: return x / (1.0 + std::exp(-x));
    case ops::UnaryOp::gelu: return 0.5 * x * (1.0 + std::erf(x / std::sqrt(2.0)));
    case ops::UnaryOp::gelu_tanh:
      return 0.5 * x * (1.0 + std::tanh(std::sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x)));
    case ops::UnaryOp::softplus: return std::log1p(std::exp(x));
    case ops::UnaryOp::sin: return std::sin(x);
    case ops::UnaryOp::cos: return std::cos(x);
    case ops::UnaryOp::erf: return std::erf(x);
  }
  return 0;
}

class UnaryOpTest : public ::testing::TestWithParam<ops::UnaryOp> {};

TEST_P(UnaryOpTest, MatchesDoubleReferenceOnRandomStridedInput) {
  ops::UnaryOp op = GetParam();
  bool positive = op == ops::UnaryOp::log || op == ops::UnaryOp::sqrt || op == ops::UnaryOp::rsqrt;
  Tensor base = random_tensor({7, 13}, 10, Dtype::f32, positive ? 0.1f : -4.0f, 4.0f);
  for (Tensor x : {base, base.transpose(0, 1), base.slice(1, 1, 12, 3)}) {
    Tensor y = ops::unary(op, x);
    ASSERT_EQ(y.shape(), x.shape());
    for (int64_t i = 0; i < x.dim(0); ++i)
      for (int64_t j = 0; j < x.dim(1); ++j) {
        double want = ref_unary(op, at(x, {i, j}));
        ASSERT_NEAR(at(y, {i, j}), want, 2e-6 + 2e-6 * std::fabs(want));
      }
  }
}

INSTANTIATE_TEST_SUITE_P(
    AllOps, UnaryOpTest,
    ::testing::Values(ops::UnaryOp::neg, ops::UnaryOp::abs, ops::UnaryOp::square, ops::UnaryOp::exp,
                      ops::UnaryOp::log, ops::UnaryOp::sqrt, ops::UnaryOp::rsqrt,
                      ops::UnaryOp::tanh, ops::UnaryOp::sigmoid, ops::UnaryOp::silu,
                      ops::UnaryOp::gelu, ops::UnaryOp::gelu_tanh, ops::UnaryOp::softplus,
                      ops::UnaryOp::sin, ops::UnaryOp::cos, ops::UnaryOp::erf));

TEST(Elementwise, BinaryBroadcastsLikeNumpy) {
  Tensor a = random_tensor({4, 1, 5}, 20);
  Tensor b = random_tensor({3, 1}, 21);
  Tensor c = ops::mul(a, b);
  ASSERT_EQ(c.shape(), (Shape{4, 3, 5}));
  for (int64_t i = 0; i < 4; ++i)
    for (int64_t j = 0; j < 3; ++j)
      for (int64_t k = 0; k < 5; ++k)
        ASSERT_FLOAT_EQ(at(c, {i, j, k}), static_cast<float>(at(a, {i, 0, k}) * at(b, {j, 0})));
  EXPECT_THROW(ops::add(random_tensor({2, 3}, 1), random_tensor({4}, 2)), ShapeError);
}

TEST(Elementwise, AllBinaryOpsOnLargeParallelInput) {
  Tensor a = random_tensor({300, 257}, 30, Dtype::f32, 0.5f, 3.0f);
  Tensor b = random_tensor({300, 257}, 31, Dtype::f32, 0.5f, 3.0f);
  auto av = a.to_float_vector(), bv = b.to_float_vector();
  struct Case {
    ops::BinaryOp op;
    double (*f)(double, double);
  };
  Case cases[] = {
      {ops::BinaryOp::add, [](double x, double y) { return x + y; }},
      {ops::BinaryOp::sub, [](double x, double y) { return x - y; }},
      {ops::BinaryOp::mul, [](double x, double y) { return x * y; }},
      {ops::BinaryOp::div, [](double x, double y) { return x / y; }},
      {ops::BinaryOp::maximum, [](double x, double y) { return std::max(x, y); }},
      {ops::BinaryOp::minimum, [](double x, double y) { return std::min(x, y); }},
      {ops::BinaryOp::pow, [](double x, double y) { return std::pow(x, y); }},
  };
  for (const auto& c : cases) {
    auto got = ops::binary(c.op, a, b).to_float_vector();
    for (size_t i = 0; i < got.size(); ++i) {
      double want = c.f(av[i], bv[i]);
      ASSERT_NEAR(got[i], want, 1e-6 * (1 + std::fabs(want)));
    }
  }
}

TEST(Elementwise, Bf16InputsComputeInF32AndRoundOnce) {
  Tensor a = random_tensor({64}, 40, Dtype::bf16);
  Tensor b = random_tensor({64}, 41, Dtype::bf16);
  Tensor c = ops::add(a, b);
  EXPECT_EQ(c.dtype(), Dtype::bf16);
  auto av = a.to_float_vector(), bv = b.to_float_vector(), cv = c.to_float_vector();
  for (size_t i = 0; i < cv.size(); ++i) EXPECT_EQ(cv[i], bf16_to_f32(f32_to_bf16(av[i] + bv[i])));
  Tensor mixed = ops::add(a, random_tensor({64}, 42, Dtype::f16));
  EXPECT_EQ(mixed.dtype(), Dtype::f32);
}

TEST(Elementwise, IntegerOpsStayExact) {
  Tensor a = Tensor::from_vector<int64_t>({int64_t{1} << 40, -7, 9}, {3});
  Tensor b = Tensor::from_vector<int32_t>({3, 2, -4}, {3});
  EXPECT_EQ(ops::add(a, b).to_int_vector(), (std::vector<int64_t>{(int64_t{1} << 40) + 3, -5, 5}));
  EXPECT_EQ(ops::mul(a, 2.0).to_int_vector(),
            (std::vector<int64_t>{int64_t{1} << 41, -14, 18}));
  EXPECT_EQ(ops::div(b, 2.0).dtype(), Dtype::f32);
}

TEST(Elementwise, ScalarClampWhereCompare) {
  Tensor x = random_tensor({5, 6}, 50);
  Tensor c = ops::clamp(x, -0.5, 0.5);
  auto xv = x.to_float_vector(), cv = c.to_float_vector();
  for (size_t i = 0; i < xv.size(); ++i) EXPECT_EQ(cv[i], std::min(std::max(xv[i], -0.5f), 0.5f));
  EXPECT_THROW(ops::clamp(x, 1, 0), InvalidArgument);
  Tensor zero = Tensor::zeros({});
  Tensor mask = ops::greater(x, zero);
  EXPECT_EQ(mask.dtype(), Dtype::boolean);
  Tensor w = ops::where(mask, x, ops::neg(x));
  auto wv = w.to_float_vector();
  for (size_t i = 0; i < xv.size(); ++i) EXPECT_EQ(wv[i], std::fabs(xv[i]));
}

}  // namespace
}  // namespace lmx
