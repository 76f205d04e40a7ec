// The recurrent scans against the recurrences written out in double precision on
// random inputs: the whole sequence at once, then in two pieces through the state.
#include "lmx/core/ops/ssm.h"

#include <gtest/gtest.h>

#include <cmath>

#include "lmx/base/error.h"
#include "../test_util.h"

namespace lmx {
namespace {

using testing::random_floats;
using testing::random_tensor;

TEST(SsmScan, MatchesTheRecurrenceAndCarriesStateAcrossCalls) {
  const int64_t B = 2, L = 7, H = 4, P = 3, N = 5, G = 2;
  Tensor x = random_tensor({B, L, H, P}, 1);
  Tensor dt = random_tensor({B, L, H}, 2, Dtype::f32, 0.01f, 1.0f);
  Tensor a = random_tensor({H, N}, 3, Dtype::f32, -2.0f, -0.1f);
  Tensor b = random_tensor({B, L, G, N}, 4);
  Tensor c = random_tensor({B, L, G, N}, 5);
  Tensor d = random_tensor({H}, 6);
  const auto xv = x.to_float_vector(), dtv = dt.to_float_vector(), av = a.to_float_vector(), bv = b.to_float_vector(),
             cv = c.to_float_vector(), dv = d.to_float_vector();
  std::vector<double> want(static_cast<size_t>(B * L * H * P)), state(static_cast<size_t>(B * H * P * N), 0.0);
  for (int64_t bb = 0; bb < B; ++bb)
    for (int64_t t = 0; t < L; ++t)
      for (int64_t h = 0; h < H; ++h) {
        const int64_t g = h / (H / G);
        const double step = dtv[static_cast<size_t>((bb * L + t) * H + h)];
        for (int64_t p = 0; p < P; ++p) {
          const double xi = xv[static_cast<size_t>(((bb * L + t) * H + h) * P + p)];
          double y = dv[static_cast<size_t>(h)] * xi;
          for (int64_t n = 0; n < N; ++n) {
            double& s = state[static_cast<size_t>(((bb * H + h) * P + p) * N + n)];
            s = std::exp(step * av[static_cast<size_t>(h * N + n)]) * s +
                step * xi * bv[static_cast<size_t>(((bb * L + t) * G + g) * N + n)];
            y += s * cv[static_cast<size_t>(((bb * L + t) * G + g) * N + n)];
          }
          want[static_cast<size_t>(((bb * L + t) * H + h) * P + p)] = y;
        }
      }
  Tensor st = Tensor::zeros({B, H, P, N});
  auto got = ops::ssm_scan(x, dt, a, b, c, d, st).to_float_vector();
  for (size_t i = 0; i < want.size(); ++i) EXPECT_NEAR(got[i], want[i], 1e-4 * (1 + std::fabs(want[i]))) << i;
  for (size_t i = 0; i < state.size(); ++i) EXPECT_NEAR(st.to_float_vector()[i], state[i], 1e-4 * (1 + std::fabs(state[i])));
  // In two pieces (3 + 4 tokens) through the state: the same outputs.
  Tensor st2 = Tensor::zeros({B, H, P, N});
  auto first = ops::ssm_scan(x.slice(1, 0, 3), dt.slice(1, 0, 3), a, b.slice(1, 0, 3), c.slice(1, 0, 3), d, st2);
  auto second = ops::ssm_scan(x.slice(1, 3, L), dt.slice(1, 3, L), a, b.slice(1, 3, L), c.slice(1, 3, L), d, st2);
  auto f = first.to_float_vector(), s = second.to_float_vector();
  for (int64_t bb = 0; bb < B; ++bb)
    for (int64_t t = 0; t < L; ++t)
      for (int64_t i = 0; i < H * P; ++i) {
        const float v = t < 3 ? f[static_cast<size_t>((bb * 3 + t) * H * P + i)]
                              : s[static_cast<size_t>((bb * (L - 3) + t - 3) * H * P + i)];
        EXPECT_FLOAT_EQ(v, got[static_cast<size_t>((bb * L + t) * H * P + i)]);
      }
}

TEST(GatedDeltaScan, MatchesTheRecurrence) {
  const int64_t B = 2, L = 6, Hk = 2, Hv = 4, K = 3, V = 5;
  Tensor q = random_tensor({B, L, Hk, K}, 11), k = random_tensor({B, L, Hk, K}, 12, Dtype::f32, -0.5f, 0.5f);
  Tensor v = random_tensor({B, L, Hv, V}, 13), g = random_tensor({B, L, Hv}, 14, Dtype::f32, -1.0f, 0.0f);
  Tensor beta = random_tensor({B, L, Hv}, 15, Dtype::f32, 0.0f, 1.0f);
  const auto qv = q.to_float_vector(), kv = k.to_float_vector(), vv = v.to_float_vector(), gv = g.to_float_vector(),
             bv = beta.to_float_vector();
  std::vector<double> want(static_cast<size_t>(B * L * Hv * V));
  for (int64_t bb = 0; bb < B; ++bb)
    for (int64_t h = 0; h < Hv; ++h) {
      const int64_t hk = h / (Hv / Hk);
      std::vector<double> S(static_cast<size_t>(K * V), 0.0);
      for (int64_t t = 0; t < L; ++t) {
        const size_t gi = static_cast<size_t>((bb * L + t) * Hv + h);
        auto kat = [&](int64_t i) { return static_cast<double>(kv[static_cast<size_t>(((bb * L + t) * Hk + hk) * K + i)]); };
        auto qat = [&](int64_t i) { return static_cast<double>(qv[static_cast<size_t>(((bb * L + t) * Hk + hk) * K + i)]); };
        for (auto& s : S) s *= std::exp(static_cast<double>(gv[gi]));
        for (int64_t j = 0; j < V; ++j) {
          double mem = 0;
          for (int64_t i = 0; i < K; ++i) mem += S[static_cast<size_t>(i * V + j)] * kat(i);
          const double delta = (vv[static_cast<size_t>(((bb * L + t) * Hv + h) * V + j)] - mem) * bv[gi];
          for (int64_t i = 0; i < K; ++i) S[static_cast<size_t>(i * V + j)] += kat(i) * delta;
          double o = 0;
          for (int64_t i = 0; i < K; ++i) o += S[static_cast<size_t>(i * V + j)] * qat(i);
          want[static_cast<size_t>(((bb * L + t) * Hv + h) * V + j)] = o;
        }
      }
    }
  Tensor st = Tensor::zeros({B, Hv, K, V});
  auto got = ops::gated_delta_scan(q, k, v, g, beta, st).to_float_vector();
  for (size_t i = 0; i < want.size(); ++i) EXPECT_NEAR(got[i], want[i], 1e-4 * (1 + std::fabs(want[i]))) << i;
}

TEST(SsmScan, BadShapesNameTheArgument) {
  Tensor x = random_tensor({1, 2, 4, 3}, 1), dt = random_tensor({1, 2, 4}, 2), a = random_tensor({4, 5}, 3);
  Tensor b = random_tensor({1, 2, 3, 5}, 4);  // 4 heads are not a multiple of 3 groups
  Tensor st = Tensor::zeros({1, 4, 3, 5});
  try {
    ops::ssm_scan(x, dt, a, b, b, Tensor(), st);
    FAIL() << "expected ShapeError";
  } catch (const ShapeError& e) {
    EXPECT_NE(std::string(e.what()).find("groups"), std::string::npos) << e.what();
  }
  Tensor good_b = random_tensor({1, 2, 2, 5}, 5), bad_state = Tensor::zeros({1, 4, 3, 4});
  EXPECT_THROW(ops::ssm_scan(x, dt, a, good_b, good_b, Tensor(), bad_state), ShapeError);
}

}  // namespace
}  // namespace lmx
