#include "lmx/backend/cpu/attention.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "nn_test_util.h"

namespace lmx::cpu {
namespace {

using testing::available_paths;
using testing::path_name;
using testing::random_vector;
using testing::ScopedCpuPath;

constexpr float kInf = std::numeric_limits<float>::infinity();

// One attention problem with its own storage. K/V live in a larger "cache" buffer
// (capacity > kv_len) so their strides are those of a view; q and out use the
// [batch, seq, heads, dim] layout of projections, viewed as [batch, heads, seq, dim].
struct Problem {
  int64_t batch = 1, q_heads = 4, kv_heads = 4, q_len = 1, kv_len = 16, head_dim = 64,
          v_head_dim = 64;
  Dtype kv_dtype = Dtype::f32;
  int64_t capacity_extra = 5;
  bool transposed_k = false;  // k stored [batch, kv_heads, head_dim, capacity]: inner stride != 1
  AttentionOptions opt;
  std::vector<float> mask_storage, sink_storage;

  std::vector<float> q, kf, vf;  // f32 values (k/v: as really stored)
  std::vector<uint16_t> kh, vh;  // 16-bit storage when kv_dtype != f32
  AttentionArgs args;

  void build(uint32_t seed) {
    const int64_t cap = kv_len + capacity_extra;
    q = random_vector(static_cast<size_t>(batch * q_len * q_heads * head_dim), seed, -1.5f, 1.5f);
    kf = random_vector(static_cast<size_t>(batch * kv_heads * cap * head_dim), seed + 1, -1.5f,
                       1.5f);
    vf = random_vector(static_cast<size_t>(batch * kv_heads * cap * v_head_dim), seed + 2);
    if (kv_dtype != Dtype::f32) {
      const bool bf = kv_dtype == Dtype::bf16;
      kh = testing::to_half(kf, bf);
      vh = testing::to_half(vf, bf);
      for (size_t i = 0; i < kf.size(); ++i) kf[i] = bf ? bf16_to_f32(kh[i]) : f16_to_f32(kh[i]);
      for (size_t i = 0; i < vf.size(); ++i) vf[i] = bf ? bf16_to_f32(vh[i]) : f16_to_f32(vh[i]);
    }
    args.batch = batch;
    args.q_heads = q_heads;
    args.kv_heads = kv_heads;
    args.q_len = q_len;
    args.kv_len = kv_len;
    args.head_dim = head_dim;
    args.v_head_dim = v_head_dim;
    args.q = q.data();
    set4(args.q_strides, q_len * q_heads * head_dim, head_dim, q_heads * head_dim, 1);
    args.k = kv_dtype == Dtype::f32 ? static_cast<const void*>(kf.data()) : kh.data();
    if (transposed_k)
      set4(args.k_strides, kv_heads * cap * head_dim, cap * head_dim, 1, cap);
    else
      set4(args.k_strides, kv_heads * cap * head_dim, cap * head_dim, head_dim, 1);
    args.v = kv_dtype == Dtype::f32 ? static_cast<const void*>(vf.data()) : vh.data();
    set4(args.v_strides, kv_heads * cap * v_head_dim, cap * v_head_dim, v_head_dim, 1);
    args.kv_dtype = kv_dtype;
    set4(args.out_strides, q_len * q_heads * v_head_dim, v_head_dim, q_heads * v_head_dim, 1);
    if (opt.scale == 1.0f) opt.scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
  }
  static void set4(int64_t* s, int64_t a, int64_t b, int64_t c, int64_t d) {
    s[0] = a;
    s[1] = b;
    s[2] = c;
    s[3] = d;
  }
  size_t out_size() const { return static_cast<size_t>(batch * q_len * q_heads * v_head_dim); }
  int64_t out_index(int64_t b, int64_t h, int64_t i, int64_t d) const {
    return b * args.out_strides[0] + h * args.out_strides[1] + i * args.out_strides[2] + d;
  }

  // Independent double-precision reference: full score matrix with explicit masks.
  std::vector<double> expected() const {
    std::vector<double> out(out_size(), 0.0);
    const int64_t group = q_heads / kv_heads;
    const int64_t cap = kv_len + capacity_extra;
    for (int64_t b = 0; b < batch; ++b) {
      for (int64_t h = 0; h < q_heads; ++h) {
        const int64_t kvh = h / group;
        for (int64_t i = 0; i < q_len; ++i) {
          std::vector<double> s(static_cast<size_t>(kv_len));
          std::vector<bool> visible(static_cast<size_t>(kv_len));
          const int64_t pos = opt.q_offset + i;
          for (int64_t j = 0; j < kv_len; ++j) {
            double dot = 0;
            for (int64_t d = 0; d < head_dim; ++d) {
              const double kd = transposed_k ? kf[((b * kv_heads + kvh) * head_dim + d) * cap + j]
                                             : kf[((b * kv_heads + kvh) * cap + j) * head_dim + d];
              dot += double(q[((b * q_len + i) * q_heads + h) * head_dim + d]) * kd;
            }
            double x = dot * opt.scale;
            if (opt.softcap > 0) x = opt.softcap * std::tanh(x / opt.softcap);
            if (opt.mask) {
              x += opt.mask[b * opt.mask_strides[0] + h * opt.mask_strides[1] +
                            i * opt.mask_strides[2] + j * opt.mask_strides[3]];
            }
            bool vis = !std::isinf(x) || x > 0;
            if (opt.causal && j > pos) vis = false;
            if (opt.window > 0 && pos - j >= opt.window) vis = false;
            visible[j] = vis;
            s[j] = x;
          }
          double m = opt.sinks ? opt.sinks[h] : -kInf;
          for (int64_t j = 0; j < kv_len; ++j) {
            if (visible[j]) m = std::max(m, s[j]);
          }
          bool any = false;
          for (int64_t j = 0; j < kv_len; ++j) any = any || visible[j];
          if (!any) continue;  // fully masked row: zeros
          double denom = opt.sinks ? std::exp(opt.sinks[h] - m) : 0.0;
          for (int64_t j = 0; j < kv_len; ++j) {
            if (visible[j]) denom += std::exp(s[j] - m);
          }
          for (int64_t j = 0; j < kv_len; ++j) {
            if (!visible[j]) continue;
            const double p = std::exp(s[j] - m) / denom;
            for (int64_t d = 0; d < v_head_dim; ++d) {
              out[out_index(b, h, i, d)] +=
                  p * vf[((b * kv_heads + kvh) * cap + j) * v_head_dim + d];
            }
          }
        }
      }
    }
    return out;
  }
};

// Runs `p` on every path (and the library's naive reference) and compares with the
// independent reference to ~1e-5 relative.
void check(Problem& p, const std::string& what, int threads = 2, uint32_t seed = 1) {
  p.build(seed);
  const auto want = p.expected();
  ThreadPool pool(threads);
  auto compare = [&](const std::vector<float>& got, const std::string& path) {
    for (int64_t b = 0; b < p.batch; ++b) {
      for (int64_t h = 0; h < p.q_heads; ++h) {
        for (int64_t i = 0; i < p.q_len; ++i) {
          for (int64_t d = 0; d < p.v_head_dim; ++d) {
            const int64_t k = p.out_index(b, h, i, d);
            const double w = want[static_cast<size_t>(k)];
            ASSERT_NEAR(got[static_cast<size_t>(k)], w, 1e-5 * (std::abs(w) + 0.1))
                << what << " [" << path << "] b" << b << " h" << h << " i" << i << " d" << d;
          }
        }
      }
    }
  };
  {
    std::vector<float> out(p.out_size(), 123.0f);
    p.args.out = out.data();
    attention_reference(p.args, p.opt);
    compare(out, "reference");
  }
  for (CpuTier tier : available_paths()) {
    ScopedCpuPath path(tier);
    std::vector<float> out(p.out_size(), 123.0f);
    p.args.out = out.data();
    scaled_dot_product_attention(p.args, p.opt, pool);
    compare(out, path_name(tier));
  }
}

TEST(Attention, GqaRatiosAndHeadDims) {
  for (auto [hq, hkv] : {std::pair{4, 4}, {4, 2}, {8, 2}}) {
    // 72, 24/40: rows of whole 8-lane sets but not 16-lane ones (gathered on AVX-512);
    // 96: 6 sets of 16 (the p v chunks of 4 + 2 registers).
    for (auto [d, dv] : {std::pair{64, 64}, {20, 20}, {36, 12}, {128, 128}, {72, 72}, {24, 40},
                         {96, 96}, {80, 48}}) {
      for (int64_t lq : {1, 3}) {
        Problem p;
        p.batch = 2;
        p.q_heads = hq;
        p.kv_heads = hkv;
        p.head_dim = d;
        p.v_head_dim = dv;
        p.q_len = lq;
        p.kv_len = 77;
        check(p, "gqa " + std::to_string(hq) + "/" + std::to_string(hkv) + " d" +
                     std::to_string(d) + " dv" + std::to_string(dv) + " lq" + std::to_string(lq));
      }
    }
  }
}

TEST(Attention, KvDtypes) {
  for (Dtype dt : {Dtype::f16, Dtype::bf16}) {
    for (int64_t d : {64, 20}) {
      Problem p;
      p.kv_dtype = dt;
      p.q_heads = 8;
      p.kv_heads = 2;
      p.head_dim = p.v_head_dim = d;
      p.q_len = 5;
      p.kv_len = 130;
      p.opt.causal = true;
      p.opt.q_offset = 125;
      check(p, std::string("kv ") + std::string(dtype_name(dt)) + " d" + std::to_string(d));
    }
  }
}

TEST(Attention, CausalPrefillAndOffsets) {
  for (int64_t len : {1, 7, 64, 65, 200}) {
    Problem p;
    p.q_heads = 4;
    p.kv_heads = 2;
    p.q_len = p.kv_len = len;
    p.opt.causal = true;
    check(p, "causal prefill " + std::to_string(len));
  }
  // Chunked prefill: 9 new queries after 40 cached tokens.
  Problem p;
  p.q_len = 9;
  p.kv_len = 49;
  p.opt.causal = true;
  p.opt.q_offset = 40;
  check(p, "causal offset");
}

TEST(Attention, SlidingWindow) {
  for (bool causal : {true, false}) {
    for (int64_t window : {1, 16, 100}) {
      Problem p;
      p.q_heads = 4;
      p.kv_heads = 1;
      p.q_len = 20;
      p.kv_len = 150;
      p.opt.causal = causal;
      p.opt.q_offset = 130;
      p.opt.window = window;
      check(p, "window " + std::to_string(window) + (causal ? " causal" : ""));
    }
  }
}

TEST(Attention, AdditiveMaskWithFullyMaskedRow) {
  for (bool broadcast : {true, false}) {
    Problem p;
    p.batch = 2;
    p.q_heads = 4;
    p.kv_heads = 2;
    p.q_len = 6;
    p.kv_len = 70;
    const int64_t ld = p.kv_len + 3;
    const int64_t mats = broadcast ? 1 : p.batch * p.q_heads;
    p.mask_storage = random_vector(static_cast<size_t>(mats * p.q_len * ld), 99, -3.0f, 1.0f);
    for (int64_t m = 0; m < mats; ++m) {
      float* base = p.mask_storage.data() + m * p.q_len * ld;
      for (int64_t j = 0; j < p.kv_len; j += 3) base[1 * ld + j] = -kInf;  // some masked keys
      for (int64_t j = 0; j < p.kv_len; ++j) base[4 * ld + j] = -kInf;     // row 4: nothing visible
    }
    p.opt.mask = p.mask_storage.data();
    if (broadcast)
      Problem::set4(p.opt.mask_strides, 0, 0, ld, 1);
    else
      Problem::set4(p.opt.mask_strides, p.q_heads * p.q_len * ld, p.q_len * ld, ld, 1);
    check(p, broadcast ? "mask [Lq, Lkv]" : "mask [B, H, Lq, Lkv]");
    // The fully masked row is exactly zero on every path, never NaN.
    ThreadPool pool(2);
    for (CpuTier tier : available_paths()) {
      ScopedCpuPath path(tier);
      std::vector<float> out(p.out_size(), 123.0f);
      p.args.out = out.data();
      scaled_dot_product_attention(p.args, p.opt, pool);
      for (int64_t d = 0; d < p.v_head_dim; ++d) ASSERT_EQ(out[p.out_index(1, 3, 4, d)], 0.0f);
    }
  }
}

TEST(Attention, SoftcapAndSinks) {
  {
    Problem p;
    p.q_heads = 4;
    p.kv_heads = 2;
    p.q_len = 4;
    p.kv_len = 90;
    p.opt.scale = 2.0f;  // large logits, so the cap bites
    p.opt.softcap = 5.0f;
    p.opt.causal = true;
    p.opt.q_offset = 86;
    check(p, "softcap");
  }
  for (int64_t kv_len : {1, 33, 300}) {
    Problem p;
    p.q_heads = 8;
    p.kv_heads = 2;
    p.q_len = 3;
    p.kv_len = kv_len;
    p.sink_storage = random_vector(8, 5, -2.0f, 3.0f);
    p.opt.sinks = p.sink_storage.data();
    p.opt.causal = true;
    p.opt.q_offset = kv_len - 3 > 0 ? kv_len - 3 : 0;
    p.opt.window = 128;
    check(p, "sinks kv " + std::to_string(kv_len));
  }
}

TEST(Attention, DecodeSplitOverKeysMergesExactly) {
  // One kv head and one query: fewer (head, block) items than threads, so the keys are
  // split over threads and merged (with sinks and a window cutting some splits empty).
  for (int variant = 0; variant < 3; ++variant) {
    Problem p;
    p.q_heads = 2;
    p.kv_heads = 1;
    p.q_len = 1;
    p.kv_len = 3000;
    p.kv_dtype = variant == 1 ? Dtype::f16 : Dtype::f32;
    p.opt.causal = true;
    p.opt.q_offset = 2999;
    if (variant == 2) {
      p.sink_storage = {0.5f, 1.5f};
      p.opt.sinks = p.sink_storage.data();
      p.opt.window = 700;
    }
    check(p, "decode split variant " + std::to_string(variant), /*threads=*/8);
  }
}

TEST(Attention, SplitWithSeveralRowsAndEmptyCache) {
  // Three queries of one head at different positions, keys split over 8 threads.
  Problem p;
  p.q_heads = 1;
  p.kv_heads = 1;
  p.q_len = 3;
  p.kv_len = 1500;
  p.head_dim = p.v_head_dim = 256;  // Gemma's head size
  p.opt.causal = true;
  p.opt.q_offset = 700;  // queries see 701..703 of the 1500 keys
  check(p, "split rows", /*threads=*/8);
  // No keys at all: every row is fully masked, so zeros (also with sinks).
  Problem e;
  e.kv_len = 0;
  e.sink_storage = {1.0f, 2.0f, 3.0f, 4.0f};
  e.opt.sinks = e.sink_storage.data();
  check(e, "empty cache");
}

TEST(Attention, EveryOptionAtOnce) {
  // bf16 cache, GQA 8/2, batch 2, chunked causal prefill with a window, a broadcast
  // mask, soft-capping and sinks, on 3 threads.
  Problem p;
  p.batch = 2;
  p.q_heads = 8;
  p.kv_heads = 2;
  p.q_len = 5;
  p.kv_len = 211;
  p.kv_dtype = Dtype::bf16;
  p.opt.causal = true;
  p.opt.q_offset = 206;
  p.opt.window = 150;
  p.opt.softcap = 3.0f;
  p.mask_storage = random_vector(static_cast<size_t>(p.q_len * p.kv_len), 17, -2.0f, 0.5f);
  for (int64_t j = 100; j < 211; j += 7) p.mask_storage[2 * p.kv_len + j] = -kInf;
  p.opt.mask = p.mask_storage.data();
  Problem::set4(p.opt.mask_strides, 0, 0, p.kv_len, 1);
  p.sink_storage = random_vector(8, 23, -1.0f, 2.0f);
  p.opt.sinks = p.sink_storage.data();
  check(p, "every option", /*threads=*/3);
}

TEST(Attention, LongContextTilingAndStridedKeys) {
  Problem p;
  p.batch = 1;
  p.q_heads = 4;
  p.kv_heads = 1;
  p.q_len = 2;
  p.kv_len = 2500;
  p.opt.causal = true;
  p.opt.q_offset = 2498;
  check(p, "long context");
  Problem t;
  t.q_heads = 2;
  t.kv_heads = 2;
  t.q_len = 3;
  t.kv_len = 40;
  t.head_dim = 24;
  t.v_head_dim = 24;
  t.transposed_k = true;
  check(t, "k inner stride != 1");
}

}  // namespace
}  // namespace lmx::cpu
