// Every backward of lmx/core/autograd against finite differences of a double-precision
// reference forward (gradcheck.h), on random inputs with odd shapes.
#include <gtest/gtest.h>

#include <cmath>

#include "lmx/base/error.h"
#include "lmx/core/autograd/functions.h"
#include "lmx/core/autograd/grad_scope.h"
#include "lmx/core/ops/random.h"
#include "tests/backend/cpu/cpu_tiers.h"
#include "tests/core/autograd/gradcheck.h"

namespace lmx {
namespace {

using autograd::Var;
using testing::expect_gradients_match;
using testing::random_tensor;
using testing::Vecs;

Var leaf(const Shape& shape, uint32_t seed, float lo = -1.5f, float hi = 1.5f) {
  return Var(random_tensor(shape, seed, Dtype::f32, lo, hi), true);
}

// y [rows, n] = a [rows, k] @ b [k, n] in double.
std::vector<double> ref_matmul(const std::vector<double>& a, const std::vector<double>& b, int64_t rows,
                               int64_t k, int64_t n) {
  std::vector<double> y(static_cast<size_t>(rows * n), 0.0);
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < n; ++j)
      for (int64_t p = 0; p < k; ++p) y[i * n + j] += a[i * k + p] * b[p * n + j];
  return y;
}

TEST(Autograd, NothingIsRecordedOutsideAGradScope) {
  Var x = leaf({3, 5}, 1);
  Var y = autograd::mul(x, x);
  EXPECT_FALSE(y.requires_grad());  // no node, no saved tensor
  EXPECT_THROW(autograd::backward(autograd::sum_all(y)), InvalidArgument);
  autograd::GradScope scope;
  EXPECT_TRUE(autograd::mul(x, x).requires_grad());
  EXPECT_FALSE(autograd::mul(Var(x.value()), 2.0).requires_grad());  // constants record nothing
}

TEST(Autograd, AddMulBroadcast) {
  autograd::GradScope scope;
  Var a = leaf({3, 1, 5}, 2), b = leaf({4, 5}, 3);
  Var y = autograd::mul(autograd::add(a, b), autograd::mul(b, 0.7));  // [3, 4, 5]
  expect_gradients_match(y, {a, b}, [](const Vecs& in) {
    std::vector<double> out;
    for (int i = 0; i < 3; ++i)
      for (int j = 0; j < 4; ++j)
        for (int k = 0; k < 5; ++k) {
          const double av = in[0][i * 5 + k], bv = in[1][j * 5 + k];
          out.push_back((av + bv) * bv * 0.7);
        }
    return out;
  });
}

TEST(Autograd, MatmulWithSharedMatrixAndReshapeTranspose) {
  autograd::GradScope scope;
  Var a = leaf({2, 3, 5}, 4), b = leaf({5, 7}, 5);
  // (a @ b) viewed as [2, 7, 3] through a transpose, then flattened.
  Var y = autograd::reshape(autograd::transpose(autograd::matmul(a, b), 1, 2), {2, 21});
  expect_gradients_match(y, {a, b}, [](const Vecs& in) {
    std::vector<double> m = ref_matmul(in[0], in[1], 6, 5, 7), out;
    for (int bi = 0; bi < 2; ++bi)
      for (int j = 0; j < 7; ++j)
        for (int i = 0; i < 3; ++i) out.push_back(m[(bi * 3 + i) * 7 + j]);
    return out;
  });
}

TEST(Autograd, BatchedMatmul) {
  autograd::GradScope scope;
  Var a = leaf({2, 3, 4}, 6), b = leaf({2, 4, 5}, 7);
  Var y = autograd::matmul(a, b);
  expect_gradients_match(y, {a, b}, [](const Vecs& in) {
    std::vector<double> out;
    for (int bi = 0; bi < 2; ++bi) {
      std::vector<double> av(in[0].begin() + bi * 12, in[0].begin() + bi * 12 + 12);
      std::vector<double> bv(in[1].begin() + bi * 20, in[1].begin() + bi * 20 + 20);
      auto m = ref_matmul(av, bv, 3, 4, 5);
      out.insert(out.end(), m.begin(), m.end());
    }
    return out;
  });
}

TEST(Autograd, LinearWithBias) {
  autograd::GradScope scope;
  Var x = leaf({2, 3, 5}, 8), w = leaf({7, 5}, 9), bias = leaf({7}, 10);
  Var y = autograd::linear(x, w, bias);
  expect_gradients_match(y, {x, w, bias}, [](const Vecs& in) {
    std::vector<double> out;
    for (int r = 0; r < 6; ++r)
      for (int o = 0; o < 7; ++o) {
        double s = in[2][o];
        for (int i = 0; i < 5; ++i) s += in[0][r * 5 + i] * in[1][o * 5 + i];
        out.push_back(s);
      }
    return out;
  });
}

TEST(Autograd, LinearWithFrozenBf16Weight) {
  // Finite differences need a smooth forward: x in f32, not rounded to bf16 (AMD's default
  // with AVX512_BF16).
  const cpu::testing::ExactBf16Matmuls exact;
  autograd::GradScope scope;
  Var x = leaf({3, 6}, 11);
  Tensor w = random_tensor({4, 6}, 12, Dtype::bf16);
  Var y = autograd::linear(x, Var(w));
  const std::vector<double> wd = testing::doubles(w);
  expect_gradients_match(y, {x}, [&](const Vecs& in) {
    std::vector<double> out;
    for (int r = 0; r < 3; ++r)
      for (int o = 0; o < 4; ++o) {
        double s = 0;
        for (int i = 0; i < 6; ++i) s += in[0][r * 6 + i] * wd[o * 6 + i];
        out.push_back(s);
      }
    return out;
  });
}

TEST(Autograd, QuantizedLinearWithRespectToActivations) {
  autograd::GradScope scope;
  Var x = leaf({2, 3, 64}, 13);
  QuantizedWeight q = QuantizedWeight::quantize(random_tensor({5, 64}, 14), 4, 32, Dtype::f32);
  Tensor bias = random_tensor({5}, 15);
  Var y = autograd::quantized_linear(x, q, bias);
  // The reference multiplies by the dequantized matrix (w = scale * q + bias per group).
  const std::vector<double> wd = testing::doubles(q.dequantize()), bd = testing::doubles(bias);
  expect_gradients_match(
      y, {x},
      [&](const Vecs& in) {
        std::vector<double> out;
        for (int r = 0; r < 6; ++r)
          for (int o = 0; o < 5; ++o) {
            double s = bd[o];
            for (int i = 0; i < 64; ++i) s += in[0][r * 64 + i] * wd[o * 64 + i];
            out.push_back(s);
          }
        return out;
      },
      // The default quantized kernel rounds activations to int16 per group (~1e-5).
      5e-4, 1e-4);
}

TEST(Autograd, EmbeddingRowsWithRepeats) {
  autograd::GradScope scope;
  Var table = leaf({11, 6}, 16);
  Tensor ids = Tensor::from_vector<int32_t>({3, 0, 10, 3, 7, 3}, {2, 3});
  Var y = autograd::embedding(table, ids);
  expect_gradients_match(y, {table}, [](const Vecs& in) {
    std::vector<double> out;
    for (int id : {3, 0, 10, 3, 7, 3})
      for (int d = 0; d < 6; ++d) out.push_back(in[0][id * 6 + d]);
    return out;
  });
}

void check_rms_norm(bool unit_offset) {
  autograd::GradScope scope;
  Var x = leaf({3, 2, 7}, 17), w = leaf({7}, 18);
  Var y = autograd::rms_norm(x, w, 1e-5f, unit_offset);
  expect_gradients_match(y, {x, w}, [&](const Vecs& in) {
    std::vector<double> out;
    for (int r = 0; r < 6; ++r) {
      double ms = 0;
      for (int d = 0; d < 7; ++d) ms += in[0][r * 7 + d] * in[0][r * 7 + d];
      const double inv = 1.0 / std::sqrt(ms / 7 + 1e-5);
      for (int d = 0; d < 7; ++d) out.push_back(in[0][r * 7 + d] * inv * (unit_offset ? 1 + in[1][d] : in[1][d]));
    }
    return out;
  });
}
TEST(Autograd, RmsNorm) { check_rms_norm(false); }
TEST(Autograd, RmsNormUnitOffset) { check_rms_norm(true); }

void check_rope(bool traditional) {
  autograd::GradScope scope;
  const int64_t B = 2, H = 3, L = 5, D = 10, R = 6;  // rotary dims 6 of 10: 4 pass through
  Var x = leaf({B, H, L, D}, 19);
  ops::RopeParams p;
  std::vector<float> freqs{1.0f, 0.31f, 0.047f};
  p.inv_freq = Tensor::from_vector(freqs, {3});
  p.rotary_dim = R;
  p.traditional = traditional;
  p.offset = 3;
  p.mscale = 1.25f;
  // A strided input, as attention gives it: [B, L, H, D] viewed as [B, H, L, D].
  Var xs = autograd::transpose(autograd::reshape(autograd::transpose(x, 1, 2), {B, L, H, D}), 1, 2);
  Var y = autograd::rope(xs, p);
  expect_gradients_match(y, {x}, [&](const Vecs& in) {
    std::vector<double> out(in[0].size());
    for (int64_t bh = 0; bh < B * H; ++bh)
      for (int64_t s = 0; s < L; ++s) {
        const double* v = &in[0][(bh * L + s) * D];
        double* o = &out[(bh * L + s) * D];
        for (int64_t d = R; d < D; ++d) o[d] = v[d];
        for (int64_t i = 0; i < R / 2; ++i) {
          const double a = static_cast<double>(p.offset + s) * freqs[i];
          const int64_t i1 = traditional ? 2 * i : i, i2 = traditional ? 2 * i + 1 : i + R / 2;
          o[i1] = 1.25 * (v[i1] * std::cos(a) - v[i2] * std::sin(a));
          o[i2] = 1.25 * (v[i2] * std::cos(a) + v[i1] * std::sin(a));
        }
      }
    return out;
  });
}
TEST(Autograd, RopeHalves) { check_rope(false); }
TEST(Autograd, RopeTraditional) { check_rope(true); }

// out [B, Hq, L, D] in double, GQA head h reading kv head h / (Hq / Hkv); key j visible
// to query i when !causal or j <= i, and i - j < window when window > 0; scores
// soft-capped (cap * tanh(s / cap)) when cap > 0.
std::vector<double> ref_attention(const Vecs& in, int64_t B, int64_t Hq, int64_t Hkv, int64_t L, int64_t D,
                                  double scale, bool causal, int64_t window = 0, double cap = 0) {
  std::vector<double> out(static_cast<size_t>(B * Hq * L * D));
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < Hq; ++h) {
      const int64_t kh = h / (Hq / Hkv);
      for (int64_t i = 0; i < L; ++i) {
        std::vector<double> s(static_cast<size_t>(L), 0.0);
        std::vector<bool> seen(static_cast<size_t>(L), false);
        double m = -1e300;
        for (int64_t j = 0; j < L; ++j) {
          if ((causal && j > i) || (window > 0 && i - j >= window)) continue;
          double dot = 0;
          for (int64_t d = 0; d < D; ++d)
            dot += in[0][((b * Hq + h) * L + i) * D + d] * in[1][((b * Hkv + kh) * L + j) * D + d];
          s[j] = dot * scale;
          if (cap > 0) s[j] = cap * std::tanh(s[j] / cap);
          seen[j] = true;
          m = std::max(m, s[j]);
        }
        double z = 0;
        for (int64_t j = 0; j < L; ++j) z += seen[j] ? (s[j] = std::exp(s[j] - m)) : (s[j] = 0.0);
        for (int64_t d = 0; d < D; ++d) {
          double acc = 0;
          for (int64_t j = 0; j < L; ++j) acc += s[j] / z * in[2][((b * Hkv + kh) * L + j) * D + d];
          out[((b * Hq + h) * L + i) * D + d] = acc;
        }
      }
    }
  return out;
}

void check_attention(bool causal, int64_t window = 0, float cap = 0.0f) {
  autograd::GradScope scope;
  const int64_t B = 2, Hq = 4, Hkv = 2, L = 7, D = 6;
  Var q = leaf({B, Hq, L, D}, 20), k = leaf({B, Hkv, L, D}, 21), v = leaf({B, Hkv, L, D}, 22);
  ops::AttentionParams p;
  p.scale = 0.45f;
  p.causal = causal;
  p.window = window;
  p.softcap = cap;
  Var y = autograd::scaled_dot_product_attention(q, k, v, p);
  expect_gradients_match(
      y, {q, k, v}, [&](const Vecs& in) { return ref_attention(in, B, Hq, Hkv, L, D, 0.45, causal, window, cap); });
}
TEST(Autograd, CausalAttentionWithGroupedKvHeads) { check_attention(true); }
TEST(Autograd, FullAttentionWithGroupedKvHeads) { check_attention(false); }
TEST(Autograd, SlidingWindowAttention) { check_attention(true, 3); }
// A cap near the scores' size so tanh bends them (Gemma 2 uses 50 over larger scores).
TEST(Autograd, SoftCappedSlidingWindowAttention) { check_attention(true, 4, 1.5f); }

TEST(Autograd, AttentionRefusesWhatHasNoBackward) {
  autograd::GradScope scope;
  Var q = leaf({1, 2, 3, 4}, 20), k = leaf({1, 2, 3, 4}, 21), v = leaf({1, 2, 3, 4}, 22);
  ops::AttentionParams p;
  p.sinks = Tensor::zeros({2});
  EXPECT_THROW(autograd::scaled_dot_product_attention(q, k, v, p), Unsupported);
}

double ref_act(ops::GatedActivation act, double x) {
  switch (act) {
    case ops::GatedActivation::silu: return x / (1 + std::exp(-x));
    case ops::GatedActivation::gelu: return 0.5 * x * (1 + std::erf(x / std::sqrt(2.0)));
    case ops::GatedActivation::gelu_tanh:
      return 0.5 * x * (1 + std::tanh(std::sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x)));
  }
  return 0;
}

void check_gated(ops::GatedActivation act) {
  autograd::GradScope scope;
  Var gate = leaf({3, 7}, 23, -4.0f, 4.0f), up = leaf({3, 7}, 24);
  Var y = autograd::gated_activation(act, gate, up);
  expect_gradients_match(y, {gate, up}, [&](const Vecs& in) {
    std::vector<double> out;
    for (size_t i = 0; i < in[0].size(); ++i) out.push_back(ref_act(act, in[0][i]) * in[1][i]);
    return out;
  });
}
TEST(Autograd, SiluGated) { check_gated(ops::GatedActivation::silu); }
TEST(Autograd, GeluGated) { check_gated(ops::GatedActivation::gelu); }
TEST(Autograd, GeluTanhGated) { check_gated(ops::GatedActivation::gelu_tanh); }

TEST(Autograd, SoftmaxLastAxis) {
  autograd::GradScope scope;
  Var x = leaf({2, 3, 5}, 29, -3.0f, 3.0f);
  Var y = autograd::softmax(x);
  expect_gradients_match(y, {x}, [](const Vecs& in) {
    std::vector<double> out(in[0].size());
    for (size_t r = 0; r < 6; ++r) {
      double z = 0;
      for (size_t j = 0; j < 5; ++j) z += std::exp(in[0][r * 5 + j]);
      for (size_t j = 0; j < 5; ++j) out[r * 5 + j] = std::exp(in[0][r * 5 + j]) / z;
    }
    return out;
  });
}

TEST(Autograd, SoftCap) {
  autograd::GradScope scope;
  Var x = leaf({4, 6}, 30, -8.0f, 8.0f);
  Var y = autograd::softcap(x, 3.0f);
  expect_gradients_match(y, {x}, [](const Vecs& in) {
    std::vector<double> out;
    for (double v : in[0]) out.push_back(3.0 * std::tanh(v / 3.0));
    return out;
  });
  EXPECT_THROW(autograd::softcap(x, 0.0f), InvalidArgument);
}

// Top-k routing weights as the MoE block computes them: the chosen softmax entries
// divided by their sum (div and sum over an axis, with broadcasting).
TEST(Autograd, DivBySumOverAxis) {
  autograd::GradScope scope;
  Var a = leaf({3, 4}, 31, 0.2f, 2.0f);
  Var y = autograd::div(a, autograd::sum(a, -1, true));
  Var b = leaf({4}, 32, 0.5f, 2.0f);
  Var z = autograd::add(y, autograd::div(a, b));  // a second broadcast divisor
  expect_gradients_match(z, {a, b}, [](const Vecs& in) {
    std::vector<double> out;
    for (int r = 0; r < 3; ++r) {
      double s = 0;
      for (int j = 0; j < 4; ++j) s += in[0][r * 4 + j];
      for (int j = 0; j < 4; ++j) out.push_back(in[0][r * 4 + j] / s + in[0][r * 4 + j] / in[1][j]);
    }
    return out;
  });
  Var c = leaf({2, 3, 4}, 33);
  EXPECT_EQ(autograd::sum(c, 1, false).shape(), (Shape{2, 4}));
  EXPECT_THROW(autograd::sum(c, 3), ShapeError);
}

TEST(Autograd, CrossEntropyWithIgnoredPositions) {
  autograd::GradScope scope;
  const int64_t N = 6, V = 9;
  Var logits = leaf({N, V}, 25, -3.0f, 3.0f);
  const std::vector<int32_t> t{4, 0, 8, 2, 2, 7};
  const std::vector<float> w{1, 0, 1, 1, 0, 1};
  Var loss = autograd::cross_entropy(logits, Tensor::from_vector(t, {N}), Tensor::from_vector(w, {N}));
  expect_gradients_match(loss, {logits}, [&](const Vecs& in) {
    double total = 0, count = 0;
    for (int64_t r = 0; r < N; ++r) {
      double m = -1e300, z = 0;
      for (int64_t j = 0; j < V; ++j) m = std::max(m, in[0][r * V + j]);
      for (int64_t j = 0; j < V; ++j) z += std::exp(in[0][r * V + j] - m);
      total += w[r] * (m + std::log(z) - in[0][r * V + t[r]]);
      count += w[r];
    }
    return std::vector<double>{total / count};
  });
  // Masked rows get no gradient at all.
  for (float g : logits.grad().slice(0, 1, 2).to_float_vector()) EXPECT_EQ(g, 0.0f);
}

TEST(Autograd, CrossEntropyRejectsAllMasked) {
  Var logits = leaf({2, 3}, 26);
  EXPECT_THROW(autograd::cross_entropy(logits, Tensor::from_vector<int32_t>({0, 1}, {2}),
                                       Tensor::from_vector<float>({0, 0}, {2})),
               InvalidArgument);
}

TEST(Autograd, DropoutKeepsOrZeroesAndScales) {
  autograd::GradScope scope;
  Var x = leaf({50, 40}, 27);
  ops::RandomGenerator rng(5);
  Var y = autograd::dropout(x, 0.25f, rng);
  autograd::backward(autograd::sum_all(y));
  const auto xv = x.value().to_float_vector(), yv = y.value().to_float_vector(), g = x.grad().to_float_vector();
  int zeros = 0;
  for (size_t i = 0; i < xv.size(); ++i) {
    if (yv[i] == 0.0f) {
      ++zeros;
      EXPECT_EQ(g[i], 0.0f);
    } else {
      EXPECT_NEAR(yv[i], xv[i] / 0.75f, 1e-5f);
      EXPECT_NEAR(g[i], 1.0f / 0.75f, 1e-6f);
    }
  }
  EXPECT_NEAR(zeros / 2000.0, 0.25, 0.04);
}

TEST(Autograd, GradientsAccumulateOverSharedUses) {
  autograd::GradScope scope;
  // y = x * x + x uses x three times: dy/dx = 2x + 1.
  Var x = leaf({4, 3}, 28);
  Var y = autograd::add(autograd::mul(x, x), x);
  expect_gradients_match(y, {x}, [](const Vecs& in) {
    std::vector<double> out;
    for (double v : in[0]) out.push_back(v * v + v);
    return out;
  });
}

}  // namespace
}  // namespace lmx
