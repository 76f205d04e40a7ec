#include "lmx/core/ops/linalg.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>

#include "lmx/base/error.h"
#include "lmx/core/quantized_weight.h"
#include "../../backend/cpu/cpu_tiers.h"
#include "../test_util.h"

namespace lmx {
namespace {

using testing::at;
using testing::random_tensor;

// Naive double-precision product of 2-D tensors read through their strides.
std::vector<double> naive_mm(const Tensor& a, const Tensor& b) {
  int64_t m = a.dim(0), k = a.dim(1), n = b.dim(1);
  std::vector<double> c(static_cast<size_t>(m * n), 0.0);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double s = 0;
      for (int64_t p = 0; p < k; ++p) s += at(a, {i, p}) * at(b, {p, j});
      c[i * n + j] = s;
    }
  return c;
}

TEST(Linalg, BatchedMatmulWithBroadcastAndTransposedViews) {
  Tensor a = random_tensor({2, 3, 5, 7}, 90);
  Tensor b = random_tensor({3, 9, 7}, 91).transpose(1, 2);  // [3, 7, 9], strided
  Tensor c = ops::matmul(a, b);
  ASSERT_EQ(c.shape(), (Shape{2, 3, 5, 9}));
  for (int64_t i = 0; i < 2; ++i)
    for (int64_t h = 0; h < 3; ++h) {
      auto want = naive_mm(a.select(0, i).select(0, h), b.select(0, h));
      auto got = c.select(0, i).select(0, h).to_float_vector();
      testing::expect_close(got, std::vector<float>(want.begin(), want.end()), 1e-5, 1e-5);
    }
  EXPECT_THROW(ops::matmul(random_tensor({2, 3}, 1), random_tensor({4, 2}, 2)), ShapeError);
  Tensor v = random_tensor({7}, 92);
  EXPECT_EQ(ops::matmul(random_tensor({5, 7}, 93), v).shape(), (Shape{5}));
}

TEST(Linalg, LinearWithEveryWeightDtype) {
  // Against the exact sums (x in f32; x rounded to bf16, AMD's default, has its own tests
  // in tests/backend/cpu).
  const cpu::testing::ExactBf16Matmuls exact;
  Tensor x = random_tensor({2, 3, 40}, 94);
  Tensor bias = random_tensor({17}, 95);
  for (Dtype dt : {Dtype::f32, Dtype::f16, Dtype::bf16}) {
    Tensor w = random_tensor({17, 40}, 96, dt);
    // The bias in the weight's dtype, as checkpoints store it (values exact in bf16/f16).
    bias = bias.to(dt).to(Dtype::f32);
    Tensor y = ops::linear(x, w, bias.to(dt));
    ASSERT_EQ(y.shape(), (Shape{2, 3, 17}));
    Tensor x2 = x.reshape({6, 40});
    auto ref = naive_mm(x2, w.transpose(0, 1));
    auto got = y.to_float_vector();
    for (size_t r = 0; r < 6; ++r)
      for (size_t j = 0; j < 17; ++j)
        ASSERT_NEAR(got[r * 17 + j], ref[r * 17 + j] + at(bias, {static_cast<int64_t>(j)}), 2e-5)
            << dtype_name(dt);
    // A strided bias view: every other element of a longer vector.
    const Tensor strided = random_tensor({34}, 97, dt).slice(0, 0, 34, 2);
    const Tensor strided_f32 = strided.to(Dtype::f32);
    auto got2 = ops::linear(x, w, strided).to_float_vector();
    for (size_t r = 0; r < 6; ++r)
      for (size_t j = 0; j < 17; ++j)
        ASSERT_NEAR(got2[r * 17 + j], ref[r * 17 + j] + at(strided_f32, {static_cast<int64_t>(j)}),
                    2e-5)
            << "strided bias " << dtype_name(dt);
  }
  EXPECT_THROW(ops::linear(x, random_tensor({17, 41}, 1)), ShapeError);
  EXPECT_THROW(ops::linear(x, random_tensor({17, 40}, 1), random_tensor({16}, 2)), ShapeError);
}

// linears: linear() for each weight over one x, bit for bit, with the same errors.
TEST(Linalg, LinearsIsLinearForEachWeight) {
  Tensor x = random_tensor({2, 40}, 130);
  Tensor w1 = random_tensor({17, 40}, 131, Dtype::bf16), w2 = random_tensor({40, 5}, 132).transpose(0, 1);
  Tensor b1 = random_tensor({17}, 133);
  const Tensor* ws[] = {&w1, &w2};
  const Tensor biases[] = {b1, Tensor()};
  auto got = ops::linears(x, ws, biases);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].to_float_vector(), ops::linear(x, w1, b1).to_float_vector());
  EXPECT_EQ(got[1].to_float_vector(), ops::linear(x, w2).to_float_vector());
  Tensor bad = random_tensor({17, 41}, 1);
  const Tensor* wbad[] = {&w1, &bad};
  EXPECT_THROW(ops::linears(x, wbad, biases), ShapeError);
  EXPECT_THROW(ops::linears(x, ws, std::span<const Tensor>(biases, 1)), InvalidArgument);
}

// x [B, H, L, n] @ (W [H * n, k] as H blocks of n rows): the products against the
// dequantized weights in double precision, every affine bit width and group size and a
// floating-point mode (mxfp4), on whatever tier this machine dispatches to.
TEST(Linalg, QuantizedBmmMatchesDequantizedHeads) {
  const int64_t B = 2, H = 3, L = 2, n = 40, k = 128;
  const Tensor x = random_tensor({B, H, L, n}, 31);
  const Tensor w = random_tensor({H * n, k}, 32, Dtype::f32, -0.5f, 0.5f);
  auto check = [&](const QuantizedWeight& q, const std::string& what) {
    const Tensor deq = q.dequantize();  // [H * n, k]
    const Tensor got = ops::quantized_bmm(x, q, H);
    ASSERT_EQ(got.shape(), (Shape{B, H, L, k})) << what;
    for (int64_t b = 0; b < B; ++b)
      for (int64_t h = 0; h < H; ++h) {
        const Tensor xr = x.select(0, b).select(0, h);          // [L, n]
        const Tensor wh = deq.slice(0, h * n, (h + 1) * n);      // [n, k]
        const auto want = naive_mm(xr, wh);
        const auto gv = got.select(0, b).select(0, h).contiguous().to_float_vector();
        testing::expect_close(gv, std::vector<float>(want.begin(), want.end()), 1e-5, 1e-5);
      }
  };
  for (int bits : {2, 3, 4, 5, 6, 8})
    for (int group : {32, 64, 128}) {
      check(QuantizedWeight::quantize(w, bits, group, Dtype::bf16), "bits " + std::to_string(bits));
    }
  check(QuantizedWeight::quantize(w, 4, 64, Dtype::f32), "f32 scales");
  check(QuantizedWeight::quantize(w, 4, 32, Dtype::bf16, QuantMode::mxfp4), "mxfp4");
  // A transposed view of x reads the same values.
  const QuantizedWeight q = QuantizedWeight::quantize(w, 4, 64, Dtype::bf16);
  const Tensor xt = x.transpose(2, 3).contiguous().transpose(2, 3);
  EXPECT_EQ(ops::quantized_bmm(xt, q, H).to_float_vector(), ops::quantized_bmm(x, q, H).to_float_vector());
  EXPECT_THROW(ops::quantized_bmm(x, q, 2), ShapeError);  // 2 heads of 60 rows, x has 3 of 40
  EXPECT_THROW(ops::quantized_bmm(random_tensor({H, L, n + 1}, 33), q, H), ShapeError);
  QuantizedWeight prepared = q;
  prepared.prepare();
  EXPECT_THROW(ops::quantized_bmm(x, prepared, H), InvalidArgument);
}

TEST(Linalg, QuantizedLinearMatchesDequantizedWeights) {
  Tensor x = random_tensor({3, 128}, 97);
  Tensor w = random_tensor({24, 128}, 98, Dtype::f32, -0.5f, 0.5f);
  for (int bits : {2, 3, 4, 5, 6, 8}) {
    for (int group : {32, 64, 128}) {
      QuantizedWeight q = QuantizedWeight::quantize(w, bits, group, Dtype::bf16);
      q.validate("test");
      Tensor deq = q.dequantize();
      // Quantization error is bounded by half a step per element.
      auto wv = w.to_float_vector(), dv = deq.to_float_vector();
      double max_step = 1.0 / ((1 << bits) - 1) * 1.01 + 0.01;
      for (size_t i = 0; i < wv.size(); ++i) ASSERT_NEAR(dv[i], wv[i], max_step) << bits;
      auto want = naive_mm(x, deq.transpose(0, 1));
      auto got = ops::quantized_linear(x, q).to_float_vector();
      testing::expect_close(got, std::vector<float>(want.begin(), want.end()), 1e-4, 1e-4);
      q.prepare();
      // Exact f32 activations: the reference to f32 rounding.
      ops::set_quant_activations(ops::QuantActivations::f32);
      auto packed = ops::quantized_linear(x, q).to_float_vector();
      testing::expect_close(packed, std::vector<float>(want.begin(), want.end()), 1e-4, 1e-4);
      // int16 activations (the decode default): each x is off by at most amax/65534, so
      // an output moves by at most sum|w| * amax / 65534.
      ops::set_quant_activations(ops::QuantActivations::int16);
      auto rounded = ops::quantized_linear(x, q).to_float_vector();
      auto xv = x.to_float_vector();
      float amax = 0;
      for (float v : xv) amax = std::max(amax, std::fabs(v));
      for (int64_t r = 0; r < 3; ++r)
        for (int64_t j = 0; j < 24; ++j) {
          double wsum = 0;
          for (int64_t p = 0; p < 128; ++p) wsum += std::fabs(at(deq, {j, p}));
          const size_t i = static_cast<size_t>(r * 24 + j);
          ASSERT_NEAR(rounded[i], want[i], wsum * amax / 65534.0 + 1e-4) << bits << " " << group;
        }

    }
  }
}

// Once packed, only the packed copy is held; shapes, dequantization and the MLX tensors
// all come from it unchanged (the products are checked in the test above, after packing).
TEST(Linalg, PreparedQuantizedWeightHoldsOnlyThePackedCopy) {
  for (int bits : {3, 4, 8}) {
    QuantizedWeight q =
        QuantizedWeight::quantize(random_tensor({10, 192}, 6), bits, 64, Dtype::f16);
    const QuantizedWeight original = q;
    const auto deq = q.dequantize().to_float_vector();
    q.prepare();
    EXPECT_FALSE(q.has_mlx_tensors());
    EXPECT_FALSE(q.w.defined() || q.scales.defined() || q.biases.defined());
    EXPECT_EQ(q.out_features(), 10);
    EXPECT_EQ(q.in_features(), 192);
    EXPECT_EQ(q.scale_dtype(), Dtype::f16);
    EXPECT_EQ(q.dequantize().to_float_vector(), deq);
    std::vector<float> rows(deq.begin() + 9 * 192, deq.end());
    rows.insert(rows.end(), deq.begin(), deq.begin() + 192);
    EXPECT_EQ(
        q.dequantize_rows(Tensor::from_vector(std::vector<int32_t>{9, 0}, {2})).to_float_vector(),
        rows);
    const QuantizedWeight back = q.mlx_layout();
    EXPECT_EQ(back.w.to_int_vector(), original.w.to_int_vector());
    EXPECT_EQ(back.scales.to_float_vector(), original.scales.to_float_vector());
    EXPECT_EQ(back.biases.to_float_vector(), original.biases.to_float_vector());
  }
}

TEST(Linalg, QuantizedBadInputsAreTypedErrors) {
  Tensor w = random_tensor({8, 100}, 99);
  EXPECT_THROW(QuantizedWeight::quantize(w, 4, 64), ShapeError);  // 100 % 64 != 0
  EXPECT_THROW(QuantizedWeight::quantize(random_tensor({8, 128}, 1), 7, 64), InvalidArgument);
  QuantizedWeight q = QuantizedWeight::quantize(random_tensor({8, 128}, 2), 4, 64);
  EXPECT_THROW(ops::quantized_linear(random_tensor({2, 64}, 3), q), ShapeError);
  q.scales = q.scales.slice(1, 0, 1);
  EXPECT_THROW(q.validate("layer.q_proj"), FormatError);
  try {
    q.validate("layer.q_proj");
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("layer.q_proj"), std::string::npos);
  }
}

}  // namespace
}  // namespace lmx
