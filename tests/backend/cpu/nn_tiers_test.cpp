// One suite per vector tier (avx2, avx512) of the NN row kernels (norms, softmax, RoPE,
// activations, attention): each tier against the scalar tier on odd widths (1 .. 1003: whole
// lane sets, masked tails, rows shorter than one set) and strided rows, run where the CPU has
// the tier and reported as skipped (with what is missing) where it does not. Tolerances are
// those each kernel documents for its vector tiers; padding between rows must stay untouched
// (masked stores). The per-kernel tests (norm_test, softmax_test, ...) also loop over every
// available tier against double-precision references.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "lmx/backend/cpu/activations.h"
#include "lmx/backend/cpu/attention.h"
#include "lmx/backend/cpu/norm.h"
#include "lmx/backend/cpu/rope.h"
#include "lmx/backend/cpu/softmax.h"
#include "nn_test_util.h"

namespace lmx::cpu {
namespace {

using testing::random_vector;
using testing::ScopedCpuPath;

constexpr int64_t kDims[] = {1, 15, 16, 17, 33, 100, 1003};
constexpr float kPad = -7.0f;

class NnTierTest : public ::testing::TestWithParam<CpuTier> {
 protected:
  void SetUp() override {
    CpuFeatures f;
    if (!testing::tier_features(GetParam(), f))
      GTEST_SKIP() << "this CPU lacks the " << cpu_tier_name(GetParam()) << " tier (needs "
                   << testing::tier_requirement(GetParam()) << ")";
  }
  // Runs fn on the scalar tier, then on the tier under test.
  template <class Fn>
  void both(Fn&& fn) {
    {
      ScopedCpuPath scalar(CpuTier::scalar);
      fn(want_);
    }
    ScopedCpuPath tier(GetParam());
    fn(got_);
  }
  std::vector<float> want_, got_;
};

// rel * |want| + abs, and untouched padding (kPad) at the same places.
void expect_close(const std::vector<float>& want,
                  const std::vector<float>& got,
                  double rel,
                  double abs,
                  const std::string& what) {
  ASSERT_EQ(want.size(), got.size());
  for (size_t i = 0; i < want.size(); ++i) {
    if (want[i] == kPad || std::isinf(want[i])) {
      ASSERT_EQ(got[i], want[i]) << what << " at " << i;
      continue;
    }
    ASSERT_NEAR(got[i], want[i], rel * std::abs(want[i]) + abs) << what << " at " << i;
  }
}

std::vector<uint16_t> bf16_of(const std::vector<float>& v) { return testing::to_half(v, true); }

TEST_P(NnTierTest, RmsNormMatchesScalar) {
  ThreadPool pool(2);
  for (int64_t dim : kDims) {
    const int64_t rows = 5, ldx = dim + 3, ldo = dim + 5;
    const auto x =
        random_vector(static_cast<size_t>(rows * ldx), static_cast<uint32_t>(dim), -3, 3);
    const auto wf = random_vector(static_cast<size_t>(dim), 7, 0.5f, 1.5f);
    const auto wb = bf16_of(wf);
    for (int variant = 0; variant < 4; ++variant) {  // f32 w, bf16 w, 1 + bf16 w, none
      RmsNormOptions o;
      o.eps = 1e-5f;
      if (variant == 0) o.weight = {wf.data(), Dtype::f32};
      if (variant == 1 || variant == 2) o.weight = {wb.data(), Dtype::bf16};
      o.add_unit_offset = variant == 2;
      both([&](std::vector<float>& out) {
        out.assign(static_cast<size_t>(rows * ldo), kPad);
        rms_norm(x.data(), rows, dim, ldx, out.data(), ldo, o, pool);
      });
      // rms_norm's bound for its vector tiers (norm.h: ~1e-6 relative; f32 sums).
      expect_close(want_, got_, 2e-6, 1e-7,
                   "rms dim " + std::to_string(dim) + " variant " + std::to_string(variant));
    }
  }
}

TEST_P(NnTierTest, LayerNormMatchesScalar) {
  ThreadPool pool(2);
  for (int64_t dim : kDims) {
    const int64_t rows = 4, ldx = dim + 1, ldo = dim + 2;
    const auto x =
        random_vector(static_cast<size_t>(rows * ldx), static_cast<uint32_t>(dim) + 1, 3, 5);
    const auto w = random_vector(static_cast<size_t>(dim), 4, 0.5f, 1.5f);
    const auto bf = random_vector(static_cast<size_t>(dim), 8, -1.0f, 1.0f);
    const auto bh = testing::to_half(bf, false);
    for (int variant = 0; variant < 4; ++variant) {  // bit 0: f32 weight, bit 1: f16 bias
      LayerNormOptions o;
      if (variant & 1) o.weight = {w.data(), Dtype::f32};
      if (variant & 2) o.bias = {bh.data(), Dtype::f16};
      both([&](std::vector<float>& out) {
        out.assign(static_cast<size_t>(rows * ldo), kPad);
        layer_norm(x.data(), rows, dim, ldx, out.data(), ldo, o, pool);
      });
      // Relative to the normalized scale (values ~1), as norm_test's bound.
      expect_close(want_, got_, 2e-5, 2e-5,
                   "layer dim " + std::to_string(dim) + " variant " + std::to_string(variant));
    }
  }
}

TEST_P(NnTierTest, SoftmaxMatchesScalar) {
  ThreadPool pool(2);
  const float inf = std::numeric_limits<float>::infinity();
  for (int64_t dim : kDims) {
    const int64_t rows = 4, ldx = dim + 2, ldo = dim + 3;
    auto x = random_vector(static_cast<size_t>(rows * ldx), static_cast<uint32_t>(dim), -20, 20);
    for (int64_t i = 1; i < dim; i += 3) x[1 * ldx + i] = -inf;  // masked logits
    for (int64_t i = 0; i < dim; ++i) x[3 * ldx + i] = -inf;     // an all -inf row
    for (bool log : {false, true}) {
      both([&](std::vector<float>& out) {
        out.assign(static_cast<size_t>(rows * ldo), kPad);
        (log ? log_softmax : softmax)(x.data(), rows, dim, ldx, out.data(), ldo, pool);
      });
      // softmax_test's bounds: 4e-6 relative (probabilities), 1e-6 (|lp| + 1) (log).
      expect_close(want_, got_, log ? 1e-6 : 4e-6, log ? 1e-6 : 1e-30,
                   std::string(log ? "log_softmax" : "softmax") + " dim " + std::to_string(dim));
      for (int64_t i = 0; i < dim; ++i) {  // the all -inf row: 0 / -inf exactly
        ASSERT_EQ(got_[3 * ldo + i], log ? -inf : 0.0f) << dim;
      }
    }
  }
}

TEST_P(NnTierTest, RopeMatchesScalar) {
  ThreadPool pool(2);
  // (head_dim, rotary_dim): half 1, 7, 8, 15, 16, 17, 33 pairs, full and partial rotary.
  const std::pair<int64_t, int64_t> shapes[] = {{2, 2},   {14, 14}, {20, 16}, {36, 30},
                                                {64, 32}, {34, 34}, {80, 66}, {128, 128}};
  for (auto [head_dim, rotary_dim] : shapes) {
    for (bool traditional : {false, true}) {
      const int64_t batch = 2, heads = 3, seq = 5;
      const int64_t n = batch * heads * seq * head_dim;
      const auto x = random_vector(static_cast<size_t>(n), static_cast<uint32_t>(head_dim), -2, 2);
      std::vector<float> inv_freq(static_cast<size_t>(rotary_dim / 2));
      for (size_t i = 0; i < inv_freq.size(); ++i)
        inv_freq[i] = static_cast<float>(std::pow(10000.0, -2.0 * double(i) / double(rotary_dim)));
      RopeOptions o;
      o.batch = batch;
      o.heads = heads;
      o.seq = seq;
      o.head_dim = head_dim;
      // x: [batch, seq, heads, head_dim] viewed as [batch, heads, seq, head_dim] (strided);
      // out: contiguous.
      const int64_t xs[4] = {seq * heads * head_dim, head_dim, heads * head_dim, 1};
      const int64_t os[4] = {heads * seq * head_dim, seq * head_dim, head_dim, 1};
      std::copy(xs, xs + 4, o.x_strides);
      std::copy(os, os + 4, o.out_strides);
      o.rotary_dim = rotary_dim;
      o.traditional = traditional;
      o.inv_freq = inv_freq.data();
      o.offset = 37;
      both([&](std::vector<float>& out) {
        out.assign(static_cast<size_t>(n), kPad);
        rope(x.data(), out.data(), o, pool);
      });
      const std::string what = "rope hd " + std::to_string(head_dim) + " rot " +
                               std::to_string(rotary_dim) + (traditional ? " trad" : "");
      expect_close(want_, got_, 1e-6, 1e-6, what);  // rope_test's bound
      // In place on the strided layout: the same values.
      std::vector<float> inplace = x;
      RopeOptions oi = o;
      std::copy(xs, xs + 4, oi.out_strides);
      {
        ScopedCpuPath tier(GetParam());
        rope(inplace.data(), inplace.data(), oi, pool);
      }
      for (int64_t b = 0; b < batch; ++b)
        for (int64_t h = 0; h < heads; ++h)
          for (int64_t s = 0; s < seq; ++s)
            for (int64_t d = 0; d < head_dim; ++d)
              ASSERT_EQ(inplace[b * xs[0] + h * xs[1] + s * xs[2] + d],
                        got_[b * os[0] + h * os[1] + s * os[2] + d])
                  << what << " in place";
    }
  }
}

TEST_P(NnTierTest, ActivationsMatchScalar) {
  ThreadPool pool(2);
  for (int64_t n : kDims) {
    const auto g = random_vector(static_cast<size_t>(n), static_cast<uint32_t>(n), -8, 8);
    const auto u = random_vector(static_cast<size_t>(n), static_cast<uint32_t>(n) + 1, -2, 2);
    for (Activation act :
         {Activation::silu, Activation::gelu, Activation::gelu_tanh, Activation::exp,
          Activation::tanh, Activation::sigmoid, Activation::softplus}) {
      both([&](std::vector<float>& out) {
        out.assign(static_cast<size_t>(n) + 3, kPad);
        activation_mul(act, g.data(), u.data(), out.data(), n, pool);
      });
      // activations_test's bound for the vector tiers against scalar.
      expect_close(want_, got_, 2e-6, 2e-9,
                   "activation " + std::to_string(int(act)) + " n " + std::to_string(n));
    }
  }
}

TEST_P(NnTierTest, AttentionMatchesReference) {
  ThreadPool pool(2);
  struct Case {
    int64_t q_heads, kv_heads, q_len, kv_len, head_dim, v_head_dim;
    bool causal;
    int64_t window;
    float softcap;
    Dtype kv;
  };
  const Case cases[] = {
      {32, 8, 1, 512, 64, 64, false, 0, 0.0f, Dtype::f32},     // decode, GQA 4
      {8, 8, 1, 100, 64, 64, false, 0, 0.0f, Dtype::bf16},     // MHA decode
      {4, 2, 17, 33, 80, 80, true, 0, 0.0f, Dtype::f32},       // causal prefill, GQA 2
      {4, 1, 15, 100, 72, 72, true, 8, 0.0f, Dtype::f16},      // window, gathered rows
      {6, 2, 3, 1003, 128, 128, false, 0, 30.0f, Dtype::f32},  // soft-cap, GQA 3
      {2, 2, 1, 15, 24, 40, false, 0, 0.0f, Dtype::f32},       // short rows
  };
  for (const Case& c : cases) {
    const int64_t q_size = c.q_heads * c.q_len * c.head_dim;
    const auto q = random_vector(static_cast<size_t>(q_size), 3, -1.5f, 1.5f);
    const auto kf =
        random_vector(static_cast<size_t>(c.kv_heads * c.kv_len * c.head_dim), 4, -1.5f, 1.5f);
    const auto vf = random_vector(static_cast<size_t>(c.kv_heads * c.kv_len * c.v_head_dim), 5);
    const std::vector<uint16_t> kh = testing::to_half(kf, c.kv == Dtype::bf16);
    const std::vector<uint16_t> vh = testing::to_half(vf, c.kv == Dtype::bf16);
    AttentionArgs a;
    a.q_heads = c.q_heads;
    a.kv_heads = c.kv_heads;
    a.q_len = c.q_len;
    a.kv_len = c.kv_len;
    a.head_dim = c.head_dim;
    a.v_head_dim = c.v_head_dim;
    a.q = q.data();
    const int64_t qs[4] = {q_size, c.q_len * c.head_dim, c.head_dim, 1};
    const int64_t ks[4] = {0, c.kv_len * c.head_dim, c.head_dim, 1};
    const int64_t vs[4] = {0, c.kv_len * c.v_head_dim, c.v_head_dim, 1};
    // out: [q_len, q_heads, v_head_dim] with 3 floats of padding a row.
    const int64_t ld = c.v_head_dim + 3;
    const int64_t os[4] = {0, ld, c.q_heads * ld, 1};
    std::copy(qs, qs + 4, a.q_strides);
    std::copy(ks, ks + 4, a.k_strides);
    std::copy(vs, vs + 4, a.v_strides);
    std::copy(os, os + 4, a.out_strides);
    a.kv_dtype = c.kv;
    a.k = c.kv == Dtype::f32 ? static_cast<const void*>(kf.data()) : kh.data();
    a.v = c.kv == Dtype::f32 ? static_cast<const void*>(vf.data()) : vh.data();
    AttentionOptions o;
    o.scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
    o.causal = c.causal;
    o.q_offset = c.causal ? c.kv_len - c.q_len : 0;
    o.window = c.window;
    o.softcap = c.softcap;
    const size_t out_size = static_cast<size_t>(c.q_len * c.q_heads * ld);
    std::vector<float> want(out_size, kPad), got(out_size, kPad);
    a.out = want.data();
    attention_reference(a, o);  // f64 sums
    {
      ScopedCpuPath tier(GetParam());
      a.out = got.data();
      scaled_dot_product_attention(a, o, pool);
    }
    // attention_test's bound: ~1e-5 relative to the output scale.
    expect_close(want, got, 1e-5, 1e-6,
                 "attention hq " + std::to_string(c.q_heads) + " hkv " +
                     std::to_string(c.kv_heads) + " lq " + std::to_string(c.q_len) + " lkv " +
                     std::to_string(c.kv_len) + " d " + std::to_string(c.head_dim));
  }
}

INSTANTIATE_TEST_SUITE_P(VectorTiers,
                         NnTierTest,
                         ::testing::Values(CpuTier::avx2, CpuTier::avx512),
                         [](const ::testing::TestParamInfo<CpuTier>& info) {
                           return std::string(cpu_tier_name(info.param));
                         });

}  // namespace
}  // namespace lmx::cpu
