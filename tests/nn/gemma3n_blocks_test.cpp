// Gemma 3n's blocks in lmx/nn against scalar loops written from transformers' definitions
// (the gemma3n_text fixture checks them end to end): the activation sparsity of the gated
// MLP (a normal quantile cutoff per row) and AltUp's predict / correct mixing.
#include <gtest/gtest.h>

#include <cmath>

#include "lmx/base/error.h"
#include "lmx/core/ops/random.h"
#include "lmx/nn/altup.h"
#include "lmx/nn/mlp.h"

namespace lmx::nn {
namespace {

TEST(NormalQuantile, TableValues) {
  EXPECT_NEAR(normal_quantile(0.95), 1.6448536269514722, 1e-12);
  EXPECT_NEAR(normal_quantile(0.975), 1.959963984540054, 1e-12);
  EXPECT_NEAR(normal_quantile(0.05), -1.6448536269514722, 1e-12);
  EXPECT_NEAR(normal_quantile(0.5), 0.0, 1e-12);
  EXPECT_THROW(normal_quantile(1.0), InvalidArgument);
  EXPECT_THROW(normal_quantile(0.0), InvalidArgument);
}

// down(act(relu(g - mean(g) - std(g) * z)) * up) with z = Phi^-1(0.95), std the population one.
TEST(GatedMlp, ActivationSparsityCutsTheGateAtTheNormalQuantile) {
  MlpOptions o;
  o.hidden = 8;
  o.intermediate = 32;
  o.act = Activation::silu;
  o.activation_sparsity = 0.95f;
  Mlp mlp(o);
  ops::RandomGenerator rng(5);
  std::vector<std::vector<float>> w;
  for (auto& p : mlp.parameters()) {
    *p.tensor = rng.uniform(p.shape, -0.5f, 0.5f);
    w.push_back(p.tensor->to_float_vector());  // gate [32, 8], up [32, 8], down [8, 32]
  }
  const Tensor x = rng.uniform({3, 8}, -1.0f, 1.0f);
  const std::vector<float> xv = x.to_float_vector();
  const std::vector<float> got = mlp.forward(x).to_float_vector();
  const double z = 1.6448536269514722;
  int zeros = 0;
  for (int r = 0; r < 3; ++r) {
    std::vector<double> g(32), u(32);
    double mean = 0.0, var = 0.0;
    for (int i = 0; i < 32; ++i) {
      for (int k = 0; k < 8; ++k) {
        g[i] += w[0][i * 8 + k] * xv[r * 8 + k];
        u[i] += w[1][i * 8 + k] * xv[r * 8 + k];
      }
      mean += g[i] / 32.0;
    }
    for (int i = 0; i < 32; ++i) var += (g[i] - mean) * (g[i] - mean) / 32.0;
    std::vector<double> h(32);
    for (int i = 0; i < 32; ++i) {
      const double c = std::max(0.0, g[i] - (mean + std::sqrt(var) * z));
      zeros += c == 0.0 ? 1 : 0;
      h[i] = c / (1.0 + std::exp(-c)) * u[i];
    }
    for (int j = 0; j < 8; ++j) {
      double y = 0.0;
      for (int i = 0; i < 32; ++i) y += w[2][j * 32 + i] * h[i];
      EXPECT_NEAR(got[r * 8 + j], y, 1e-5) << "row " << r << " out " << j;
    }
  }
  EXPECT_GT(zeros, 3 * 32 / 2);  // most of the gate is cut
  o.activation_sparsity = 1.0f;
  EXPECT_THROW(Mlp{o}, FormatError);
}

// predict: x_j + sum_i c[j * n + i] x_i with c = prediction_coefs(tanh(router(rms(x_a) / H)));
// correct: p_j + (y - p_a) * (1 + correction_coefs(tanh(router(rms(y) / H)))_j).
TEST(AltUp, PredictAndCorrectMixTheStreamsAsDefined) {
  AltUpOptions o{4, 3, 1, 1e-6f};
  AltUp altup(o);
  ops::RandomGenerator rng(9);
  std::vector<std::vector<float>> p;  // correct_output_scale, correction [3,3], prediction [9,3], router [3,4], norm [4]
  for (auto& slot : altup.parameters()) {
    *slot.tensor = rng.uniform(slot.shape, -0.8f, 0.8f);
    p.push_back(slot.tensor->to_float_vector());
  }
  std::vector<Tensor> x;
  std::vector<std::vector<float>> xv;
  for (int s = 0; s < 3; ++s) {
    x.push_back(rng.uniform({1, 1, 4}, -1.0f, 1.0f));
    xv.push_back(x.back().to_float_vector());
  }
  auto routed = [&](const std::vector<float>& v) {
    double ms = 0.0;
    for (float e : v) ms += e * e / 4.0;
    std::vector<double> m(3);
    for (int k = 0; k < 3; ++k) {
      double acc = 0.0;
      for (int h = 0; h < 4; ++h) acc += p[3][k * 4 + h] * v[h] / std::sqrt(ms + 1e-6) * p[4][h] / 4.0;
      m[k] = std::tanh(acc);
    }
    return m;
  };
  const std::vector<double> m = routed(xv[1]);
  const std::vector<Tensor> pred = altup.predict(x);
  std::vector<std::vector<double>> want(3, std::vector<double>(4));
  for (int j = 0; j < 3; ++j) {
    for (int h = 0; h < 4; ++h) {
      double acc = xv[j][h];
      for (int i = 0; i < 3; ++i) {
        double c = 0.0;
        for (int k = 0; k < 3; ++k) c += p[2][(j * 3 + i) * 3 + k] * m[k];
        acc += c * xv[i][h];
      }
      want[j][h] = acc;
      EXPECT_NEAR(pred[j].to_float_vector()[h], acc, 1e-5) << "stream " << j;
    }
  }
  const Tensor y = rng.uniform({1, 1, 4}, -1.0f, 1.0f);
  const std::vector<float> yv = y.to_float_vector();
  const std::vector<double> my = routed(yv);
  const std::vector<Tensor> corrected = altup.correct(pred, y);
  for (int j = 0; j < 3; ++j) {
    double c = 1.0;
    for (int k = 0; k < 3; ++k) c += p[1][j * 3 + k] * my[k];
    for (int h = 0; h < 4; ++h) {
      EXPECT_NEAR(corrected[j].to_float_vector()[h], want[j][h] + (yv[h] - want[1][h]) * c, 1e-5) << "stream " << j;
    }
  }
}

}  // namespace
}  // namespace lmx::nn
