// ops::LinearInput on the CPU: a deferred norm or gated activation runs, when read, as the
// ops it stands for (their bits, the residual's sum written once); the CPU has no linears
// with a prologue, so linears_with_prologue runs nothing and writes nothing.
#include "lmx/core/ops/linear_input.h"

#include <gtest/gtest.h>

#include "lmx/core/ops/elementwise.h"
#include "lmx/core/ops/linalg.h"
#include "../test_util.h"

namespace lmx {
namespace {

using testing::random_tensor;

TEST(LinearInput, NormWithResidualRunsAsAddRmsNormOnce) {
  const Tensor x = random_tensor({2, 3, 40}, 1), r = random_tensor({2, 3, 40}, 2);
  const Tensor w = random_tensor({40}, 3, Dtype::bf16, 0.5f, 1.5f);
  Tensor sum, want_sum;
  const Tensor want = ops::add_rms_norm(x, r, w, 1e-5f, true, &want_sum);
  const ops::LinearInput in = ops::LinearInput::rms_normed(x, r, w, 1e-5f, true, &sum);
  EXPECT_TRUE(in.deferred());
  EXPECT_EQ(in.shape(), x.shape());
  EXPECT_FALSE(sum.defined());  // not run until read
  const Tensor& got = in.value();
  EXPECT_EQ(got.to_float_vector(), want.to_float_vector());
  EXPECT_EQ(sum.to_float_vector(), want_sum.to_float_vector());
  EXPECT_EQ(in.value().raw_data(), got.raw_data());  // run once
}

TEST(LinearInput, NormWithoutResidualLeavesTheSumAlone) {
  const Tensor x = random_tensor({1, 1, 24}, 4);
  Tensor sum = random_tensor({3}, 5);
  const Tensor before = sum;
  const ops::LinearInput in = ops::LinearInput::rms_normed(x, Tensor(), Tensor(), 1e-6f, false, &sum);
  EXPECT_EQ(in.value().to_float_vector(), ops::rms_norm(x, Tensor(), 1e-6f).to_float_vector());
  EXPECT_EQ(sum.raw_data(), before.raw_data());
}

TEST(LinearInput, GatedRunsAsTheGatedActivation) {
  const Tensor gate = random_tensor({1, 2, 32}, 6, Dtype::f32, -4.0f, 4.0f), up = random_tensor({1, 2, 32}, 7);
  for (auto act : {ops::GatedActivation::silu, ops::GatedActivation::gelu, ops::GatedActivation::gelu_tanh}) {
    const std::vector<float> want = ops::gated_activation(act, gate, up).to_float_vector();
    EXPECT_EQ(ops::LinearInput::gated(act, gate, up).value().to_float_vector(), want);
    const Tensor scratch = gate.contiguous().clone();
    const ops::LinearInput in = ops::LinearInput::gated(act, scratch, up, true);
    EXPECT_EQ(in.value().to_float_vector(), want);
    EXPECT_EQ(in.value().raw_data(), scratch.raw_data());  // written into the caller's scratch gate
  }
}

TEST(LinearInput, ATensorIsItsOwnInput) {
  const Tensor x = random_tensor({2, 5}, 8);
  const ops::LinearInput in = x;
  EXPECT_FALSE(in.deferred());
  EXPECT_EQ(in.value().raw_data(), x.raw_data());
}

TEST(LinearInput, TheCpuHasNoLinearsWithAPrologue) {
  const Tensor x = random_tensor({1, 1, 16}, 9), r = random_tensor({1, 1, 16}, 10), w = random_tensor({8, 16}, 11);
  Tensor sum;
  const ops::LinearInput in = ops::LinearInput::rms_normed(x, r, Tensor(), 1e-6f, false, &sum);
  const Tensor* weights[1] = {&w};
  const Tensor biases[1] = {Tensor()};
  EXPECT_FALSE(ops::linears_with_prologue(in, weights, {}, biases).has_value());
  EXPECT_FALSE(sum.defined());
}

}  // namespace
}  // namespace lmx
