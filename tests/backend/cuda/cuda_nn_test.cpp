// CUDA softmax, norms, RoPE, gated activations and attention against the CPU backend.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "cuda_test_util.h"
#include "lmx/base/env_switch.h"
#include "lmx/core/backend.h"
#include "lmx/base/error.h"
#include "lmx/core/ops/elementwise.h"
#include "lmx/core/ops/nn.h"
#include "lmx/core/ops/reduce.h"
#include "lmx/core/ops/ssm.h"
#include "lmx/core/quantized_weight.h"

namespace lmx {
namespace {

using testing::expect_identical;
using testing::expect_matches;
using testing::on_cuda;
using testing::random_tensor;
using CudaNn = testing::CudaTest;

constexpr float kInf = std::numeric_limits<float>::infinity();

TEST_F(CudaNn, SoftmaxAndLogSoftmaxWithMaskedRows) {
  Tensor x = random_tensor({5, 301}, 51, Dtype::f32, -8.0f, 8.0f);
  std::vector<float> v = x.to_float_vector();
  for (int j = 0; j < 301; ++j) v[301 * 2 + j] = -kInf;  // a row with nothing left
  for (int j = 0; j < 301; j += 3) v[301 * 3 + j] = -kInf;
  x = Tensor::from_vector<float>(v, {5, 301});
  expect_matches(ops::softmax(on_cuda(x), -1), ops::softmax(x, -1), 1e-5, 1e-7);
  expect_matches(ops::log_softmax(on_cuda(x), -1), ops::log_softmax(x, -1), 1e-5, 1e-5);
  Tensor y = random_tensor({67, 3}, 52);  // along axis 0: strided rows through a transpose
  expect_matches(ops::softmax(on_cuda(y), 0), ops::softmax(y, 0), 1e-5, 1e-7);
}

TEST_F(CudaNn, RmsNormAndLayerNorm) {
  Tensor x = random_tensor({2, 7, 1000}, 53);
  for (Dtype wd : {Dtype::f32, Dtype::bf16}) {
    Tensor w = random_tensor({1000}, 54, wd), b = random_tensor({1000}, 55, wd);
    for (bool unit : {false, true})
      expect_matches(ops::rms_norm(on_cuda(x), on_cuda(w), 1e-5f, unit), ops::rms_norm(x, w, 1e-5f, unit), 1e-5, 1e-6);
    expect_matches(ops::layer_norm(on_cuda(x), on_cuda(w), on_cuda(b), 1e-5f), ops::layer_norm(x, w, b, 1e-5f), 1e-5,
                   1e-5);
  }
  expect_matches(ops::rms_norm(on_cuda(x), Tensor(), 1e-6f, false), ops::rms_norm(x, Tensor(), 1e-6f, false), 1e-5,
                 1e-6);
  expect_matches(ops::layer_norm(on_cuda(x.to(Dtype::bf16)), Tensor(), Tensor(), 1e-5f),
                 ops::layer_norm(x.to(Dtype::bf16), Tensor(), Tensor(), 1e-5f), 1e-5, 1e-5);
}

// The fused residual add + RMSNorm (a decode step's layer joints): the CPU's values, and
// bit for bit the CUDA add then rms_norm.
TEST_F(CudaNn, AddRmsNormFusesTheResidualAdd) {
  for (int64_t rows : {1, 3, 200}) {
    Tensor x = random_tensor({rows, 2048}, 56), r = random_tensor({rows, 2048}, 57), w = random_tensor({2048}, 58);
    Tensor sum_cpu, sum_gpu;
    Tensor cpu = ops::add_rms_norm(x, r, w, 1e-5f, false, &sum_cpu);
    Tensor gpu = ops::add_rms_norm(on_cuda(x), on_cuda(r), on_cuda(w), 1e-5f, false, &sum_gpu);
    expect_identical(sum_gpu, sum_cpu);  // one f32 add, the same everywhere
    expect_matches(gpu, cpu, 1e-5, 1e-6);
    expect_identical(gpu, ops::rms_norm(ops::add(on_cuda(x), on_cuda(r)), on_cuda(w), 1e-5f).to(Device::cpu()));
  }
}

// RMSNorm rows held in registers (2, 3, 8 values a thread; 9000 values keep the looping
// kernel) equal the looping kernel bit for bit, with and without the fused residual, with
// bf16 and unit-offset weights, against the CPU too.
TEST_F(CudaNn, RmsNormInRegistersEqualsTheLoopingKernel) {
  for (int64_t dim : {2048, 3001, 8192, 9000}) {
    for (int64_t rows : {1, 5}) {
      SCOPED_TRACE("dim=" + std::to_string(dim) + " rows=" + std::to_string(rows));
      Tensor x = random_tensor({rows, dim}, 60), r = random_tensor({rows, dim}, 61);
      Tensor w = random_tensor({dim}, 62, rows == 1 ? Dtype::f32 : Dtype::bf16);
      const bool unit = rows == 5;
      Tensor sum_regs, sum_loop, regs, plain_regs;
      {
        testing::ScopedEnv in_registers("LMX_CUDA_NORM_REGISTERS", "1");
        regs = ops::add_rms_norm(on_cuda(x), on_cuda(r), on_cuda(w), 1e-5f, unit, &sum_regs);
        plain_regs = ops::rms_norm(on_cuda(x), on_cuda(w), 1e-5f, unit);
      }
      testing::ScopedEnv loop("LMX_CUDA_NORM_REGISTERS", "0");
      Tensor looped = ops::add_rms_norm(on_cuda(x), on_cuda(r), on_cuda(w), 1e-5f, unit, &sum_loop);
      expect_identical(regs, looped.to(Device::cpu()));
      expect_identical(sum_regs, sum_loop.to(Device::cpu()));
      expect_identical(plain_regs, ops::rms_norm(on_cuda(x), on_cuda(w), 1e-5f, unit).to(Device::cpu()));
      expect_matches(plain_regs, ops::rms_norm(x, w, 1e-5f, unit), 1e-5, 1e-6);
    }
  }
}

TEST_F(CudaNn, RopeBothPairingsPartialRotaryStrided) {
  // [batch, seq, heads, head_dim] projections viewed as [batch, heads, seq, head_dim].
  Tensor x = random_tensor({2, 9, 3, 80}, 56).transpose(1, 2);
  for (bool traditional : {false, true}) {
    for (int64_t rd : {80, 32}) {
      ops::RopeParams p;
      std::vector<float> freqs(static_cast<size_t>(rd / 2));
      for (size_t i = 0; i < freqs.size(); ++i) freqs[i] = std::pow(10000.0f, -2.0f * i / rd);
      p.inv_freq = Tensor::from_vector<float>(freqs, {rd / 2});
      p.rotary_dim = rd;
      p.traditional = traditional;
      p.offset = 1234;
      p.mscale = 1.25f;
      ops::RopeParams pd = p;
      pd.inv_freq = on_cuda(p.inv_freq);
      // cosf / sinf of the same f32 angle: within 2 ulp of glibc's.
      expect_matches(ops::rope(on_cuda(x), pd), ops::rope(x, p), 1e-5, 1e-6);
    }
  }
}

TEST_F(CudaNn, RopeKernelPositionsAndBatchOffsets) {
  Tensor x = random_tensor({2, 3, 5, 64}, 57);
  Tensor freqs = random_tensor({32}, 58, Dtype::f32, 0.0f, 1.0f);
  Tensor offsets = Tensor::from_vector<int64_t>({3, 17}, {2});
  Tensor positions = Tensor::from_vector<int64_t>({0, 1, 2, 9, 4, 100, 101, 102, 7, 7}, {2, 5});
  Tensor dx = on_cuda(x), dfreqs = on_cuda(freqs), doffsets = on_cuda(offsets), dpositions = on_cuda(positions);
  for (int variant = 0; variant < 2; ++variant) {
    auto options = [&](const Tensor& f, const Tensor& o, const Tensor& pos) {
      kernels::RopeOptions r;
      r.batch = 2, r.heads = 3, r.seq = 5, r.head_dim = 64, r.rotary_dim = 64;
      for (int d = 0; d < 4; ++d) r.x_strides[d] = r.out_strides[d] = x.strides()[d];
      r.inv_freq = f.data<float>();
      r.offset = 11;
      if (variant == 0) r.batch_offsets = o.data<int64_t>();
      if (variant == 1) r.positions = pos.data<int64_t>();
      return r;
    };
    Tensor want = Tensor::empty(x.shape(), Dtype::f32), got = Tensor::empty(x.shape(), Dtype::f32, Device::cuda());
    backend_for(Device::cpu()).rope(x.data<float>(), want.data<float>(), options(freqs, offsets, positions));
    backend_for(Device::cuda()).rope(dx.data<float>(), got.data<float>(), options(dfreqs, doffsets, dpositions));
    expect_matches(got, want, 1e-5, 1e-6);
  }
}

TEST_F(CudaNn, GatedActivations) {
  Tensor g = random_tensor({3, 1001}, 59, Dtype::f32, -6.0f, 6.0f), u = random_tensor({3, 1001}, 60);
  for (auto act : {ops::GatedActivation::silu, ops::GatedActivation::gelu, ops::GatedActivation::gelu_tanh})
    expect_matches(ops::gated_activation(act, on_cuda(g), on_cuda(u)), ops::gated_activation(act, g, u), 2e-6, 1e-7);
}

struct AttentionCase {
  int64_t batch, q_heads, kv_heads, q_len, kv_len, head_dim;
  bool causal;
  int64_t q_offset, window;
  float softcap;
  bool mask, sinks;
};

TEST_F(CudaNn, AttentionMasksWindowsSoftcapSinksGqa) {
  const AttentionCase cases[] = {
      {2, 8, 2, 1, 1, 80, true, 0, 0, 0.0f, false, false},      // first decode step
      {2, 8, 2, 1, 300, 80, true, 299, 0, 0.0f, false, false},  // decode, GQA 4:1
      {1, 4, 4, 37, 37, 64, true, 0, 0, 0.0f, false, false},    // prefill
      {2, 4, 1, 13, 45, 128, true, 32, 9, 0.0f, false, false},  // chunk after a prefix, window
      {1, 8, 2, 5, 77, 256, false, 0, 0, 30.0f, true, false},   // softcap + mask
      {2, 4, 2, 9, 20, 64, true, 11, 4, 0.0f, true, true},      // everything at once
      {1, 2, 2, 6, 6, 32, false, 0, 0, 0.0f, true, true},       // rows with no visible key
      // Prefill past one tile of 32 query rows and 32 keys (the tiled kernel).
      {1, 4, 2, 70, 70, 64, true, 0, 0, 0.0f, false, false},
      {2, 6, 2, 40, 100, 128, true, 60, 17, 0.0f, true, true},
      {1, 2, 1, 33, 65, 96, false, 0, 0, 20.0f, false, true},
      {1, 2, 2, 35, 35, 6, true, 0, 0, 0.0f, false, false},  // head_dim not a multiple of 4
  };
  uint32_t seed = 61;
  for (const AttentionCase& c : cases) {
    SCOPED_TRACE("kv_len=" + std::to_string(c.kv_len) + " head_dim=" + std::to_string(c.head_dim));
    Tensor q = random_tensor({c.batch, c.q_heads, c.q_len, c.head_dim}, seed++);
    // K / V as a cache view: [batch, kv_len + 3, kv_heads, dim] sliced and transposed.
    Tensor kbuf = random_tensor({c.batch, c.kv_len + 3, c.kv_heads, c.head_dim}, seed++);
    Tensor vbuf = random_tensor({c.batch, c.kv_len + 3, c.kv_heads, c.head_dim}, seed++);
    ops::AttentionParams p;
    p.causal = c.causal, p.q_offset = c.q_offset, p.window = c.window, p.softcap = c.softcap;
    if (c.mask) {
      std::vector<float> m = random_tensor({c.q_len, c.kv_len}, seed++).to_float_vector();
      for (size_t i = 0; i < m.size(); i += 3) m[i] = -kInf;
      if (c.q_len == c.kv_len) {
        for (int64_t j = 0; j < c.kv_len; ++j) m[static_cast<size_t>(2 * c.kv_len + j)] = -kInf;  // row 2 sees nothing
      }
      p.mask = Tensor::from_vector<float>(m, {c.q_len, c.kv_len});
    }
    if (c.sinks) p.sinks = random_tensor({c.q_heads}, seed++);
    ops::AttentionParams pd = p;
    if (p.mask.defined()) pd.mask = on_cuda(p.mask);
    if (p.sinks.defined()) pd.sinks = on_cuda(p.sinks);
    for (Dtype kv : {Dtype::f32, Dtype::bf16}) {
      Tensor k = kbuf.to(kv).slice(1, 1, c.kv_len + 1).transpose(1, 2);
      Tensor v = vbuf.to(kv).slice(1, 1, c.kv_len + 1).transpose(1, 2);
      Tensor dk = on_cuda(kbuf.to(kv)).slice(1, 1, c.kv_len + 1).transpose(1, 2);
      Tensor dv = on_cuda(vbuf.to(kv)).slice(1, 1, c.kv_len + 1).transpose(1, 2);
      Tensor got = ops::scaled_dot_product_attention(on_cuda(q), dk, dv, pd);
      Tensor want = ops::scaled_dot_product_attention(q, k, v, p);
      if (kv == Dtype::bf16 && c.q_len >= 16 && cuda_flash_attention()) {  // tensor cores: q in bf16 too
        EXPECT_LE(testing::relative_error(got, want), 3e-2);
      } else {
        expect_matches(got, want, 1e-5, 2e-6);
      }
    }
  }
}

TEST_F(CudaNn, QuantizedAttention) {
  const int64_t B = 2, Hq = 8, Hkv = 2, L = 130, D = 64;
  for (int64_t Lq : {1, 3, 40})
  for (int bits : {4, 8}) {
    SCOPED_TRACE("bits=" + std::to_string(bits) + " Lq=" + std::to_string(Lq));
    auto quantized = [&](uint32_t seed) {
      QuantizedWeight w = QuantizedWeight::quantize(random_tensor({B * Hkv * L, D}, seed), bits, 32, Dtype::f32);
      return std::array<Tensor, 3>{w.w.reshape({B, Hkv, L, D * bits / 32}), w.scales.reshape({B, Hkv, L, D / 32}),
                                   w.biases.reshape({B, Hkv, L, D / 32})};
    };
    auto k = quantized(70), v = quantized(71);
    ops::QuantizedKV kv{k[0], k[1], k[2], v[0], v[1], v[2], bits, bits, 32};
    ops::QuantizedKV dkv{on_cuda(k[0]), on_cuda(k[1]), on_cuda(k[2]), on_cuda(v[0]), on_cuda(v[1]),
                         on_cuda(v[2]), bits, bits, 32};
    Tensor q = random_tensor({B, Hq, Lq, D}, 72);
    ops::AttentionParams p;
    p.scale = 0.125f, p.causal = true, p.q_offset = L - Lq, p.sinks = random_tensor({Hq}, 73);
    ops::AttentionParams pd = p;
    pd.sinks = on_cuda(p.sinks);
    expect_matches(ops::quantized_scaled_dot_product_attention(on_cuda(q), dkv, pd),
                   ops::quantized_scaled_dot_product_attention(q, kv, p), 1e-5, 2e-6);
  }
}


// The cross-entropy's gradient over a vocabulary wider than one block's chunk, one target
// past the vocabulary (no column matches).
TEST_F(CudaNn, CrossEntropyGradEqualsTheCpu) {
  const int64_t n = 6, v = 3001;
  Tensor x = random_tensor({n, v}, 120), coef = random_tensor({n}, 121);
  Tensor lse = ops::logsumexp(x, -1), t = Tensor::from_vector<int64_t>({0, 3000, 17, 1024, 1023, 3001}, {n});
  expect_matches(ops::cross_entropy_grad(on_cuda(x), on_cuda(lse), on_cuda(t), on_cuda(coef)),
                 ops::cross_entropy_grad(x, lse, t, coef), 1e-5, 1e-7);
}

// Row reductions along every axis, f32 and bf16, with a NaN row, a row of -inf and an
// empty axis: sums in f64 like the CPU (so within an ulp), argmax the same indices. Axes 0
// and 1 (rows of 3 and 5) take the short-row kernel (a thread per row), axis 2 (37) the
// block per row.
TEST_F(CudaNn, ReductionsAlongEveryAxis) {
  std::vector<float> v = random_tensor({3, 5, 37}, 110).to_float_vector();
  v[37 + 4] = std::numeric_limits<float>::quiet_NaN();           // row (0, 1) has a NaN
  for (int i = 0; i < 37; ++i) v[static_cast<size_t>(2 * 37 + i)] = -kInf;  // row (0, 2) all -inf
  v[5 * 37 + 3] = v[5 * 37 + 20] = 9.0f;                          // row (1, 0): a tie for the max
  for (Dtype dt : {Dtype::f32, Dtype::bf16}) {
    Tensor x = Tensor::from_vector<float>(v, {3, 5, 37}).to(dt), dx = on_cuda(x);
    for (int axis : {0, 1, 2, -1}) {
      SCOPED_TRACE(std::string(dtype_name(dt)) + " axis=" + std::to_string(axis));
      expect_matches(ops::sum(dx, axis), ops::sum(x, axis), 1e-6, 1e-6);
      expect_matches(ops::mean(dx, axis, true), ops::mean(x, axis, true), 1e-6, 1e-6);
      expect_matches(ops::max(dx, axis), ops::max(x, axis), 0, 0);
      expect_matches(ops::min(dx, axis), ops::min(x, axis), 0, 0);
      expect_matches(ops::logsumexp(dx, axis), ops::logsumexp(x, axis), 1e-6, 1e-6);
      expect_identical(ops::argmax(dx, axis), ops::argmax(x, axis));
    }
  }
  Tensor empty = random_tensor({4, 0}, 111);
  expect_matches(ops::sum(on_cuda(empty), 1), ops::sum(empty, 1), 0, 0);
  EXPECT_THROW(ops::sum(on_cuda(Tensor::from_vector<int32_t>({1, 2}, {2})), 0), Unsupported);
}

// The argmax of long f32 rows (the long-row kernels: a decode step's logits) against the
// CPU's: random rows of an odd length, ties for the maximum across slices (blocks), across
// one block's threads and across one thread's loads (the first index wins), a NaN after the
// maximum (the first NaN wins), a row of -inf (index 0), the maximum in the last value; and
// the general kernel's answer with the switch off.
TEST_F(CudaNn, ArgmaxOfLongRowsEqualsTheCpu) {
  const int64_t rows = 6, n = 128257;
  std::vector<float> v = random_tensor({rows, n}, 130).to_float_vector();
  auto at = [&](int64_t r, int64_t i) -> float& { return v[static_cast<size_t>(r * n + i)]; };
  at(1, 70001) = at(1, 6) = at(1, 5) = at(1, 9000) = 7.0f;  // a tie across slices and threads: index 5
  at(2, 100) = 8.0f;
  at(2, 4000) = at(2, 127000) = std::numeric_limits<float>::quiet_NaN();  // the first NaN: 4000
  for (int64_t i = 0; i < n; ++i) at(3, i) = -kInf;
  at(4, n - 1) = 9.0f;
  at(5, 1025) = at(5, 1025 + 256) = at(5, 1025 + 1024 * 8) = 6.5f;  // one thread's loads (256 threads a block): 1025
  Tensor x = Tensor::from_vector<float>(v, {rows, n}), dx = on_cuda(x);
  Tensor want = ops::argmax(x, -1);
  {
    testing::ScopedEnv on("LMX_CUDA_LONG_ROW_ARGMAX", "1");
    expect_identical(ops::argmax(dx, -1), want);
  }
  const int32_t* ids = want.data<int32_t>();
  EXPECT_EQ(ids[1], 5);
  EXPECT_EQ(ids[2], 4000);
  EXPECT_EQ(ids[3], 0);
  EXPECT_EQ(ids[4], n - 1);
  EXPECT_EQ(ids[5], 1025);
  testing::ScopedEnv general("LMX_CUDA_LONG_ROW_ARGMAX", "0");
  expect_identical(ops::argmax(dx, -1), want);
}

// The selective scan (Mamba2 shape: heads in groups, per-head decay; Mamba: head_dim 1)
// and the gated delta rule, from a random state, twice (the state carries over).
TEST_F(CudaNn, RecurrentScansCarryTheirState) {
  struct Case {
    int64_t B, L, H, P, N, G;
  };
  for (const Case c : {Case{2, 7, 4, 16, 12, 2}, Case{1, 5, 33, 1, 16, 1}}) {
    SCOPED_TRACE("heads=" + std::to_string(c.H));
    Tensor x = random_tensor({c.B, c.L, c.H, c.P}, 120), dt = random_tensor({c.B, c.L, c.H}, 121, Dtype::f32, 0.0f, 1.0f);
    Tensor a = random_tensor({c.H, c.N}, 122, Dtype::f32, -2.0f, -0.1f), d = random_tensor({c.H}, 123);
    Tensor b = random_tensor({c.B, c.L, c.G, c.N}, 124), cc = random_tensor({c.B, c.L, c.G, c.N}, 125);
    Tensor state = random_tensor({c.B, c.H, c.P, c.N}, 126), dstate = on_cuda(state);
    for (int step = 0; step < 2; ++step) {
      Tensor want = ops::ssm_scan(x, dt, a, b, cc, d, state);
      Tensor got = ops::ssm_scan(on_cuda(x), on_cuda(dt), on_cuda(a), on_cuda(b), on_cuda(cc), on_cuda(d), dstate);
      expect_matches(got, want, 1e-5, 1e-5);
      expect_matches(dstate, state, 1e-5, 1e-5);
    }
  }
  const int64_t B = 2, L = 6, Hk = 2, Hv = 4, K = 24, V = 40;
  Tensor q = random_tensor({B, L, Hk, K}, 130, Dtype::f32, -0.3f, 0.3f), k = random_tensor({B, L, Hk, K}, 131, Dtype::f32, -0.3f, 0.3f);
  Tensor v = random_tensor({B, L, Hv, V}, 132), g = random_tensor({B, L, Hv}, 133, Dtype::f32, -1.0f, 0.0f);
  Tensor beta = random_tensor({B, L, Hv}, 134, Dtype::f32, 0.0f, 1.0f);
  Tensor state = random_tensor({B, Hv, K, V}, 135), dstate = on_cuda(state);
  for (int step = 0; step < 2; ++step) {
    Tensor want = ops::gated_delta_scan(q, k, v, g, beta, state);
    Tensor got = ops::gated_delta_scan(on_cuda(q), on_cuda(k), on_cuda(v), on_cuda(g), on_cuda(beta), dstate);
    expect_matches(got, want, 1e-5, 1e-5);
    expect_matches(dstate, state, 1e-5, 1e-5);
  }
}

}  // namespace
}  // namespace lmx
