// Each fused op is checked against a reference composed of simple ops (DESIGN.md).
#include "lmx/core/ops/nn.h"

#include <gtest/gtest.h>

#include <cmath>

#include "lmx/base/error.h"
#include "lmx/core/ops/elementwise.h"
#include "lmx/core/ops/linalg.h"
#include "lmx/core/ops/reduce.h"
#include "lmx/core/ops/shape.h"
#include "../test_util.h"

namespace lmx {
namespace {

using testing::expect_close;
using testing::random_tensor;

Tensor softmax_composed(const Tensor& x) {
  Tensor e = ops::exp(ops::sub(x, ops::max(x, -1, true)));
  return ops::div(e, ops::sum(e, -1, true));
}

TEST(NnOps, SoftmaxAndLogSoftmax) {
  Tensor x = random_tensor({4, 3, 37}, 100, Dtype::f32, -8, 8);
  expect_close(ops::softmax(x).to_float_vector(), softmax_composed(x).to_float_vector(), 1e-5, 1e-7);
  expect_close(ops::log_softmax(x).to_float_vector(),
               ops::log(softmax_composed(x)).to_float_vector(), 1e-5, 1e-5);
  // Along a middle axis and from bf16.
  Tensor xb = x.to(Dtype::bf16);
  Tensor mid = ops::softmax(xb, 1);
  Tensor want = softmax_composed(xb.to(Dtype::f32).transpose(1, 2)).transpose(1, 2);
  expect_close(mid.to_float_vector(), want.contiguous().to_float_vector(), 1e-5, 1e-7);
}

// (softmax - onehot(targets)) * coef, composed; a target past the vocabulary matches no column.
TEST(NnOps, CrossEntropyGradEqualsSoftmaxMinusOnehotTimesCoef) {
  const int64_t n = 5, v = 301;
  Tensor x = random_tensor({n, v}, 104, Dtype::f32, -6, 6);
  Tensor coef = random_tensor({n}, 105);
  const std::vector<int64_t> t{7, 0, 300, 150, 301};
  Tensor got = ops::cross_entropy_grad(x, ops::logsumexp(x, -1), Tensor::from_vector(t, {n}), coef);
  std::vector<float> onehot(static_cast<size_t>(n * v), 0.0f);
  for (int64_t r = 0; r < n; ++r)
    if (t[static_cast<size_t>(r)] < v) onehot[static_cast<size_t>(r * v + t[static_cast<size_t>(r)])] = 1.0f;
  Tensor want = ops::mul(ops::sub(softmax_composed(x), Tensor::from_vector(onehot, {n, v})), coef.reshape({n, 1}));
  expect_close(got.to_float_vector(), want.to_float_vector(), 1e-5, 1e-7);
  EXPECT_THROW(ops::cross_entropy_grad(x, ops::logsumexp(x, -1), Tensor::from_vector(t, {n}).to(Dtype::i32), coef),
               InvalidArgument);
  EXPECT_THROW(ops::cross_entropy_grad(x, ops::logsumexp(x, -1), Tensor::from_vector(t, {n}), coef.slice(0, 0, 4)),
               ShapeError);
}

TEST(NnOps, RmsNormAndLayerNorm) {
  Tensor x = random_tensor({5, 67}, 101);
  Tensor w = random_tensor({67}, 102, Dtype::bf16);
  float eps = 1e-5f;
  Tensor ref = ops::mul(ops::mul(x, ops::rsqrt(ops::add(ops::mean(ops::square(x), -1, true), eps))),
                        w.to(Dtype::f32));
  expect_close(ops::rms_norm(x, w, eps).to_float_vector(), ref.to_float_vector(), 1e-5, 1e-6);
  Tensor ref1 = ops::mul(ops::div(ref, w.to(Dtype::f32)), ops::add(w.to(Dtype::f32), 1.0));
  expect_close(ops::rms_norm(x, w, eps, true).to_float_vector(), ref1.to_float_vector(), 1e-4, 1e-5);
  Tensor b = random_tensor({67}, 103);
  Tensor mu = ops::mean(x, -1, true);
  Tensor xc = ops::sub(x, mu);
  Tensor var = ops::mean(ops::square(xc), -1, true);
  Tensor ln = ops::add(ops::mul(ops::mul(xc, ops::rsqrt(ops::add(var, eps))), w.to(Dtype::f32)), b);
  expect_close(ops::layer_norm(x, w, b, eps).to_float_vector(), ln.to_float_vector(), 1e-5, 1e-5);
  EXPECT_THROW(ops::rms_norm(x, random_tensor({66}, 1), eps), ShapeError);
}

// The fused residual add + RMSNorm is the two ops, bit for bit (the sum and the normed
// rows), on rows wider than a vector and odd, strided inputs and a broadcast fallback.
TEST(NnOps, AddRmsNormEqualsAddThenRmsNormBitForBit) {
  for (int64_t dim : {67, 2048}) {
    Tensor x = random_tensor({3, 5, dim}, 104, Dtype::f32, -4, 4);
    Tensor r = random_tensor({3, 5, dim}, 105, Dtype::f32, -4, 4);
    Tensor w = random_tensor({dim}, 106, Dtype::bf16);
    for (bool unit : {false, true}) {
      Tensor sum;
      Tensor got = ops::add_rms_norm(x, r, w, 1e-5f, unit, &sum);
      Tensor want_sum = ops::add(x, r);
      EXPECT_EQ(sum.to_float_vector(), want_sum.to_float_vector());
      EXPECT_EQ(got.to_float_vector(), ops::rms_norm(want_sum, w, 1e-5f, unit).to_float_vector());
      // Without a weight, and from a strided view of x.
      Tensor xt = x.transpose(0, 1), rt = r.transpose(0, 1).contiguous();
      got = ops::add_rms_norm(xt, rt, Tensor(), 1e-6f, false, &sum);
      EXPECT_EQ(got.to_float_vector(), ops::rms_norm(ops::add(xt, rt), Tensor(), 1e-6f, false).to_float_vector());
    }
    // Shapes that broadcast take the two ops.
    Tensor sum;
    Tensor row = random_tensor({dim}, 107);
    Tensor got = ops::add_rms_norm(x, row, w, 1e-5f, false, &sum);
    EXPECT_EQ(sum.to_float_vector(), ops::add(x, row).to_float_vector());
    EXPECT_EQ(got.to_float_vector(), ops::rms_norm(ops::add(x, row), w, 1e-5f).to_float_vector());
  }
  Tensor x = random_tensor({2, 8}, 108);
  EXPECT_THROW(ops::add_rms_norm(x, x, Tensor(), 1e-5f, false, nullptr), InvalidArgument);
  Tensor sum;
  EXPECT_THROW(ops::add_rms_norm(x, x, random_tensor({7}, 1), 1e-5f, false, &sum), ShapeError);
}

// rotate_half formulation, written with slices and concat.
Tensor rope_composed(const Tensor& x, const Tensor& inv_freq, int64_t offset, bool traditional) {
  const int64_t L = x.dim(2), D = x.dim(3);
  std::vector<float> ang;
  auto f = inv_freq.to_float_vector();
  for (int64_t s = 0; s < L; ++s)
    for (int64_t i = 0; i < D / 2; ++i) ang.push_back(static_cast<float>(offset + s) * f[i]);
  Tensor a = Tensor::from_vector(ang, {L, D / 2});
  Tensor c = ops::cos(a), s = ops::sin(a);
  if (!traditional) {
    Tensor x1 = x.slice(3, 0, D / 2), x2 = x.slice(3, D / 2, D);
    return ops::concat({ops::sub(ops::mul(x1, c), ops::mul(x2, s)),
                        ops::add(ops::mul(x2, c), ops::mul(x1, s))},
                       3);
  }
  Tensor x1 = x.slice(3, 0, D, 2), x2 = x.slice(3, 1, D, 2);
  Tensor r1 = ops::sub(ops::mul(x1, c), ops::mul(x2, s));
  Tensor r2 = ops::add(ops::mul(x2, c), ops::mul(x1, s));
  return ops::stack({r1, r2}, 4).reshape(x.shape());
}

TEST(NnOps, RopeBothPairingsWithOffset) {
  Tensor x = random_tensor({2, 3, 5, 16}, 104);
  std::vector<float> fr;
  for (int i = 0; i < 8; ++i) fr.push_back(std::pow(10000.0f, -2.0f * i / 16));
  Tensor inv = Tensor::from_vector(fr, {8});
  for (bool trad : {false, true}) {
    ops::RopeParams p{inv, 0, trad, 7, 1.0f, {}};
    expect_close(ops::rope(x, p).to_float_vector(), rope_composed(x, inv, 7, trad).to_float_vector(),
                 1e-5, 1e-5);
    // Strided input: [B, L, H, D] memory viewed as [B, H, L, D].
    Tensor xs = x.transpose(1, 2).contiguous().transpose(1, 2);
    expect_close(ops::rope(xs, p).to_float_vector(), rope_composed(x, inv, 7, trad).to_float_vector(),
                 1e-5, 1e-5);
  }
  EXPECT_THROW(ops::rope(x, {Tensor::from_vector(fr, {8}), 5, false, 0, 1.0f, {}}), InvalidArgument);
  EXPECT_THROW(ops::rope(x, {Tensor::from_vector(fr, {8}), 8, false, 0, 1.0f, {}}), ShapeError);
}

// Per-row positions (a batched decode step of left-padded rows): row b at offset +
// batch_offsets[b] + s equals that row rotated alone at its own offset, bit for bit, and
// against the composed reference; a negative position is a rotation backwards.
TEST(NnOps, RopeBatchOffsetsRotateEachRowAtItsPosition) {
  Tensor x = random_tensor({3, 2, 4, 16}, 105);
  std::vector<float> fr;
  for (int i = 0; i < 8; ++i) fr.push_back(std::pow(10000.0f, -2.0f * i / 16));
  Tensor inv = Tensor::from_vector(fr, {8});
  const std::vector<int64_t> offsets{0, 5, -2};
  for (bool trad : {false, true}) {
    ops::RopeParams p{inv, 0, trad, 3, 1.0f, {}};
    p.batch_offsets = Tensor::from_vector(offsets, {3});
    const Tensor got = ops::rope(x, p);
    for (int64_t b = 0; b < 3; ++b) {
      const Tensor row = x.slice(0, b, b + 1);
      const int64_t at = 3 + offsets[static_cast<size_t>(b)];
      const Tensor alone = at >= 0 ? ops::rope(row, {inv, 0, trad, at, 1.0f, {}}) : Tensor();
      if (alone.defined()) {
        EXPECT_EQ(got.slice(0, b, b + 1).to_float_vector(), alone.to_float_vector()) << b;
      }
      expect_close(got.slice(0, b, b + 1).to_float_vector(), rope_composed(row, inv, at, trad).to_float_vector(),
                   1e-5, 1e-5);
    }
  }
  ops::RopeParams bad{inv, 0, false, 0, 1.0f, {}};
  bad.batch_offsets = Tensor::from_vector(std::vector<int64_t>{1, 2}, {2});  // 2 rows for a batch of 3
  EXPECT_THROW(ops::rope(x, bad), ShapeError);
  bad.batch_offsets = Tensor::from_vector(std::vector<int32_t>{1, 2, 3}, {3});  // not i64
  EXPECT_THROW(ops::rope(x, bad), ShapeError);
}

Tensor attention_composed(const Tensor& q, const Tensor& k, const Tensor& v, float scale,
                          const Tensor& mask) {
  int64_t rep = q.dim(1) / k.dim(1);
  Tensor kr = ops::repeat_interleave(k.to(Dtype::f32), rep, 1);
  Tensor vr = ops::repeat_interleave(v.to(Dtype::f32), rep, 1);
  Tensor s = ops::mul(ops::matmul(q, kr.transpose(2, 3)), scale);
  if (mask.defined()) s = ops::add(s, mask);
  return ops::matmul(softmax_composed(s), vr);
}

TEST(NnOps, AttentionMatchesComposedReference) {
  Tensor q = random_tensor({2, 8, 5, 16}, 105);
  Tensor k = random_tensor({2, 2, 9, 16}, 106, Dtype::bf16);
  Tensor v = random_tensor({2, 2, 9, 16}, 107, Dtype::bf16);
  const float scale = 0.25f;
  // Causal with offset 4: query i sees keys j <= 4 + i.
  std::vector<float> m(5 * 9);
  for (int i = 0; i < 5; ++i)
    for (int j = 0; j < 9; ++j) m[i * 9 + j] = j <= 4 + i ? 0.0f : -INFINITY;
  Tensor mask = Tensor::from_vector(m, {5, 9});
  ops::AttentionParams p;
  p.scale = scale;
  p.causal = true;
  p.q_offset = 4;
  expect_close(ops::scaled_dot_product_attention(q, k, v, p).to_float_vector(),
               attention_composed(q, k, v, scale, mask).to_float_vector(), 1e-5, 1e-5);
  // The same through an explicit additive mask.
  ops::AttentionParams pm;
  pm.scale = scale;
  pm.mask = mask;
  expect_close(ops::scaled_dot_product_attention(q, k, v, pm).to_float_vector(),
               attention_composed(q, k, v, scale, mask).to_float_vector(), 1e-5, 1e-5);
  EXPECT_THROW(ops::scaled_dot_product_attention(q, random_tensor({2, 3, 9, 16}, 1),
                                                 random_tensor({2, 3, 9, 16}, 2)),
               ShapeError);
}

TEST(NnOps, GatedActivations) {
  Tensor g = random_tensor({3, 33}, 108), u = random_tensor({3, 33}, 109);
  expect_close(ops::gated_activation(ops::GatedActivation::silu, g, u).to_float_vector(),
               ops::mul(ops::silu(g), u).to_float_vector(), 1e-5, 1e-6);
  expect_close(ops::gated_activation(ops::GatedActivation::gelu, g, u).to_float_vector(),
               ops::mul(ops::gelu(g), u).to_float_vector(), 1e-5, 1e-6);
  expect_close(ops::gated_activation(ops::GatedActivation::gelu_tanh, g, u).to_float_vector(),
               ops::mul(ops::gelu_tanh(g), u).to_float_vector(), 1e-5, 1e-6);
  // In place: the same values, written into the gate buffer.
  for (auto act : {ops::GatedActivation::silu, ops::GatedActivation::gelu, ops::GatedActivation::gelu_tanh}) {
    Tensor inplace = Tensor::empty(g.shape(), Dtype::f32);
    inplace.copy_(g);
    const void* buffer = inplace.raw_data();
    Tensor& r = ops::gated_activation_(act, inplace, u);
    EXPECT_EQ(r.raw_data(), buffer);
    EXPECT_EQ(r.to_float_vector(), ops::gated_activation(act, g, u).to_float_vector());
  }
  Tensor strided = random_tensor({33, 3}, 110).transpose(0, 1);
  EXPECT_THROW(ops::gated_activation_(ops::GatedActivation::silu, strided, u), InvalidArgument);
}

}  // namespace
}  // namespace lmx
