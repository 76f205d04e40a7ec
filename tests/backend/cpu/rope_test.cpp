#include "lmx/backend/cpu/rope.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "nn_test_util.h"

namespace lmx::cpu {
namespace {

using testing::available_paths;
using testing::path_name;
using testing::random_vector;
using testing::ScopedCpuPath;

std::vector<float> llama_inv_freq(int64_t rotary_dim, double base) {
  std::vector<float> f(static_cast<size_t>(rotary_dim / 2));
  for (int64_t i = 0; i < rotary_dim / 2; ++i) {
    f[i] = static_cast<float>(1.0 / std::pow(base, 2.0 * i / rotary_dim));
  }
  return f;
}

// The HF formula written out independently: cos/sin tables of length rotary_dim
// (cat(freqs, freqs), or each frequency twice for interleaved pairs), rotate_half
// (cat(-x2, x1)) or its interleaved form (-x1, x0), out = x cos + rot(x) sin.
std::vector<double> reference_head(const float* x,
                                   int64_t xs,
                                   int64_t head_dim,
                                   int64_t rotary_dim,
                                   bool traditional,
                                   const std::vector<float>& inv_freq,
                                   int64_t pos,
                                   float mscale) {
  const int64_t half = rotary_dim / 2;
  std::vector<double> cos(rotary_dim), sin(rotary_dim), rot(rotary_dim), out(head_dim);
  for (int64_t k = 0; k < rotary_dim; ++k) {
    const int64_t i = traditional ? k / 2 : k % half;
    const float angle = static_cast<float>(pos) * inv_freq[i];  // f32 product, as HF
    cos[k] = std::cos(static_cast<double>(angle)) * mscale;
    sin[k] = std::sin(static_cast<double>(angle)) * mscale;
  }
  for (int64_t k = 0; k < rotary_dim; ++k) {
    if (traditional)
      rot[k] = k % 2 == 0 ? -x[(k + 1) * xs] : x[(k - 1) * xs];
    else
      rot[k] = k < half ? -x[(k + half) * xs] : x[(k - half) * xs];
  }
  for (int64_t k = 0; k < head_dim; ++k) {
    out[k] = k < rotary_dim ? x[k * xs] * cos[k] + rot[k] * sin[k] : x[k * xs];
  }
  return out;
}

struct RopeCase {
  int64_t batch, heads, seq, head_dim, rotary_dim;
  bool traditional;
  int64_t offset;
  bool batch_offsets;
  float mscale;
};

TEST(Rope, MatchesHfFormulaForEveryLayout) {
  ThreadPool pool(2);
  const RopeCase cases[] = {
      {1, 4, 7, 64, 64, false, 0, false, 1.0f},   // Llama prefill
      {1, 4, 7, 64, 64, true, 0, false, 1.0f},    // interleaved pairs
      {2, 3, 5, 80, 40, false, 13, false, 1.0f},  // partial rotary (phi-style)
      {2, 3, 5, 80, 40, true, 13, false, 1.0f},
      {3, 2, 1, 128, 128, false, 4095, true, 1.0f},   // decode with per-batch offsets
      {2, 2, 9, 36, 20, false, 100000, false, 1.2f},  // odd half (10), long positions, mscale
      {2, 2, 9, 36, 20, true, 7, true, 0.9f},
      {1, 32, 3, 64, 64, false, 511, false, 1.0f},
  };
  for (const RopeCase& c : cases) {
    // x stored as [batch, seq, heads, head_dim] (a projection's output), viewed as
    // [batch, heads, seq, head_dim]; out contiguous [batch, heads, seq, head_dim].
    const int64_t n = c.batch * c.seq * c.heads * c.head_dim;
    const auto x = random_vector(static_cast<size_t>(n), static_cast<uint32_t>(c.head_dim + c.seq));
    const auto inv_freq = llama_inv_freq(c.rotary_dim, c.traditional ? 10000.0 : 500000.0);
    const std::vector<int64_t> boff = {5, 0, 17};
    RopeOptions o;
    o.batch = c.batch;
    o.heads = c.heads;
    o.seq = c.seq;
    o.head_dim = c.head_dim;
    const int64_t xs[4] = {c.seq * c.heads * c.head_dim, c.head_dim, c.heads * c.head_dim, 1};
    const int64_t os[4] = {c.heads * c.seq * c.head_dim, c.seq * c.head_dim, c.head_dim, 1};
    std::copy(xs, xs + 4, o.x_strides);
    std::copy(os, os + 4, o.out_strides);
    o.rotary_dim = c.rotary_dim;
    o.traditional = c.traditional;
    o.inv_freq = inv_freq.data();
    o.offset = c.offset;
    o.batch_offsets = c.batch_offsets ? boff.data() : nullptr;
    o.mscale = c.mscale;
    for (CpuTier tier : available_paths()) {
      ScopedCpuPath path(tier);
      std::vector<float> out(static_cast<size_t>(n));
      rope(x.data(), out.data(), o, pool);
      // In place on the strided layout gives the same values.
      std::vector<float> inplace = x;
      RopeOptions oi = o;
      std::copy(xs, xs + 4, oi.out_strides);
      rope(inplace.data(), inplace.data(), oi, pool);
      for (int64_t b = 0; b < c.batch; ++b) {
        for (int64_t h = 0; h < c.heads; ++h) {
          for (int64_t s = 0; s < c.seq; ++s) {
            const int64_t pos = c.offset + (c.batch_offsets ? boff[b] : 0) + s;
            const int64_t xoff = b * xs[0] + h * xs[1] + s * xs[2];
            const auto ref = reference_head(x.data() + xoff, 1, c.head_dim, c.rotary_dim,
                                            c.traditional, inv_freq, pos, c.mscale);
            for (int64_t d = 0; d < c.head_dim; ++d) {
              const float got = out[b * os[0] + h * os[1] + s * os[2] + d];
              ASSERT_NEAR(got, ref[d], 1e-6 * (std::abs(ref[d]) + 1.0))
                  << path_name(tier) << " case hd=" << c.head_dim << " trad=" << c.traditional
                  << " b" << b << " h" << h << " s" << s << " d" << d;
              ASSERT_EQ(inplace[xoff + d], got);
            }
          }
        }
      }
    }
  }
}

TEST(Rope, ExplicitPositionsPerToken) {
  ThreadPool pool(2);
  const int64_t batch = 2, heads = 3, seq = 4, head_dim = 24;
  const auto x = random_vector(static_cast<size_t>(batch * heads * seq * head_dim), 31);
  const auto inv_freq = llama_inv_freq(head_dim, 10000.0);
  // Left padding in batch 0 (positions restart at the first real token), a packed
  // second sequence in batch 1.
  const std::vector<int64_t> positions = {0, 0, 1, 2, 5, 6, 0, 1};
  RopeOptions o;
  o.batch = batch;
  o.heads = heads;
  o.seq = seq;
  o.head_dim = head_dim;
  const int64_t s[4] = {heads * seq * head_dim, seq * head_dim, head_dim, 1};
  std::copy(s, s + 4, o.x_strides);
  std::copy(s, s + 4, o.out_strides);
  o.rotary_dim = head_dim;
  o.inv_freq = inv_freq.data();
  o.offset = 1000;  // ignored when positions are given
  o.positions = positions.data();
  for (CpuTier tier : available_paths()) {
    ScopedCpuPath path(tier);
    std::vector<float> out(x.size());
    rope(x.data(), out.data(), o, pool);
    for (int64_t b = 0; b < batch; ++b) {
      for (int64_t h = 0; h < heads; ++h) {
        for (int64_t t = 0; t < seq; ++t) {
          const int64_t off = b * s[0] + h * s[1] + t * s[2];
          const auto ref = reference_head(x.data() + off, 1, head_dim, head_dim, false, inv_freq,
                                          positions[b * seq + t], 1.0f);
          for (int64_t d = 0; d < head_dim; ++d) {
            ASSERT_NEAR(out[off + d], ref[d], 1e-6 * (std::abs(ref[d]) + 1.0)) << path_name(tier);
          }
        }
      }
    }
  }
}

TEST(Rope, NonUnitInnerStrideUsesScalarPathCorrectly) {
  ThreadPool pool(1);
  // head_dim elements 2 apart (e.g. a view with a step), out contiguous.
  const int64_t head_dim = 16, heads = 2, seq = 3;
  const auto x = random_vector(static_cast<size_t>(heads * seq * head_dim * 2), 77);
  const auto inv_freq = llama_inv_freq(head_dim, 10000.0);
  RopeOptions o;
  o.heads = heads;
  o.seq = seq;
  o.head_dim = head_dim;
  const int64_t xs[4] = {0, seq * head_dim * 2, head_dim * 2, 2};
  std::copy(xs, xs + 4, o.x_strides);
  const int64_t os[4] = {0, seq * head_dim, head_dim, 1};
  std::copy(os, os + 4, o.out_strides);
  o.rotary_dim = head_dim;
  o.inv_freq = inv_freq.data();
  o.offset = 3;
  for (CpuTier tier : available_paths()) {
    ScopedCpuPath path(tier);
    std::vector<float> out(static_cast<size_t>(heads * seq * head_dim));
    rope(x.data(), out.data(), o, pool);
    for (int64_t h = 0; h < heads; ++h) {
      for (int64_t s = 0; s < seq; ++s) {
        const auto ref = reference_head(x.data() + h * xs[1] + s * xs[2], 2, head_dim, head_dim,
                                        false, inv_freq, 3 + s, 1.0f);
        for (int64_t d = 0; d < head_dim; ++d) {
          ASSERT_NEAR(out[h * os[1] + s * os[2] + d], ref[d], 1e-6 * (std::abs(ref[d]) + 1.0));
        }
      }
    }
  }
}

}  // namespace
}  // namespace lmx::cpu
