// CUDA matmuls, quantized weights and the small kernels of a linear layer against the
// CPU backend. Sums of k products in another order differ by a few f32 ulps of the
// largest partial sum, hence rel 1e-5 with a small absolute floor.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <string>
#include <vector>

#include "cuda_test_util.h"
#include "lmx/core/backend.h"
#include "lmx/core/ops/linalg.h"
#include "lmx/core/ops/nn.h"
#include "lmx/core/quantized_weight.h"

namespace lmx {
namespace {

using testing::expect_identical;
using testing::expect_matches;
using testing::on_cuda;
using testing::random_tensor;
using CudaLinalg = testing::CudaTest;

TEST_F(CudaLinalg, MatmulBatchedBroadcastTransposed) {
  Tensor a = random_tensor({2, 3, 67, 129}, 31), b = random_tensor({3, 129, 80}, 32);
  expect_matches(ops::matmul(on_cuda(a), on_cuda(b)), ops::matmul(a, b), 1e-5, 1e-5);
  Tensor bt = random_tensor({80, 129}, 33).transpose(0, 1);  // column-major B
  expect_matches(ops::matmul(on_cuda(a), on_cuda(random_tensor({80, 129}, 33)).transpose(0, 1)),
                 ops::matmul(a, bt), 1e-5, 1e-5);
  Tensor v = random_tensor({129}, 34);  // matvec shapes: m = 1
  expect_matches(ops::matmul(on_cuda(v), on_cuda(b)), ops::matmul(v, b), 1e-5, 1e-5);
  Tensor small = random_tensor({5, 67}, 35), w = random_tensor({67, 3}, 36);
  expect_matches(ops::matmul(on_cuda(small), on_cuda(w)), ops::matmul(small, w), 1e-5, 1e-5);
}

// The thin-side GEMM (thin_gemm.cu, LMX_CUDA_THIN_GEMM) on the products of a rank-r adapter
// in training: x @ A, g @ B^T (B^T a transposed view), the gradients x^T @ d and d^T @ g
// (transposed views of the wide operand), a side of 13 (the 16-wide tile, partly used),
// k short of one split and split many ways, a batch. Sums of up to 5000 f32 products in
// any order are off the exact value by tens of ulps of their partial sums (the CPU's too),
// so both are held to the exact product (in double): the GPU's largest error at most twice
// the CPU's, or 2e-6 of the largest value (a wrong element would be off by O(1)).
TEST_F(CudaLinalg, ThinGemmEveryLayoutEqualsTheCpu) {
  testing::ScopedEnv on("LMX_CUDA_THIN_GEMM", "1");
  struct Case {
    Tensor a;  // stored; transposed (a view) on both devices when ta
    bool ta;
    Tensor b;
    bool tb;
  };
  const Tensor x = random_tensor({1000, 700}, 41), g = random_tensor({1000, 300}, 42);
  const std::vector<Case> cases = {
      {x, false, random_tensor({700, 8}, 43), false},                     // x @ A: row-major wide A, n = 8
      {g, false, random_tensor({13, 300}, 44), true},                     // g @ B^T, n = 13
      {x, true, random_tensor({1000, 8}, 45), false},                     // x^T @ d: column-major wide A
      {random_tensor({1000, 4}, 46), true, g, false},                     // d^T @ g: m = 4, g row-major
      {random_tensor({5, 300}, 47), false, random_tensor({700, 300}, 48), true},  // m = 5, B^T's rows
      {random_tensor({3, 600, 70}, 49), false, random_tensor({3, 70, 16}, 50), false},  // a batch, short k
      {random_tensor({2, 300, 5000}, 51), false, random_tensor({5000, 2}, 52), false},  // k split many ways
  };
  auto view = [](const Tensor& t, bool transposed) { return transposed ? t.transpose(-2, -1) : t; };
  for (size_t i = 0; i < cases.size(); ++i) {
    SCOPED_TRACE("case " + std::to_string(i));
    const Case& c = cases[i];
    const Tensor a = view(c.a, c.ta), b = view(c.b, c.tb);
    const Tensor gpu = ops::matmul(view(on_cuda(c.a), c.ta), view(on_cuda(c.b), c.tb)).to(Device::cpu());
    const Tensor cpu = ops::matmul(a, b);
    ASSERT_EQ(gpu.shape(), cpu.shape());
    // The exact product, batch by batch (B broadcast when it has no batch).
    const int64_t m = a.dim(-2), k = a.dim(-1), n = b.dim(-1), batches = cpu.numel() / (m * n);
    const std::vector<float> av = a.contiguous().to_float_vector(), bv = b.contiguous().to_float_vector();
    const std::vector<float> gv = gpu.to_float_vector(), cv = cpu.to_float_vector();
    double gpu_err = 0, cpu_err = 0, largest = 0;
    for (int64_t s = 0; s < batches; ++s) {
      const size_t ab = static_cast<size_t>(s * m * k), bb = b.ndim() > 2 ? static_cast<size_t>(s * k * n) : 0;
      for (int64_t r = 0; r < m; ++r) {
        for (int64_t j = 0; j < n; ++j) {
          double exact = 0;
          for (int64_t p = 0; p < k; ++p)
            exact += static_cast<double>(av[ab + static_cast<size_t>(r * k + p)]) * bv[bb + static_cast<size_t>(p * n + j)];
          const size_t o = static_cast<size_t>((s * m + r) * n + j);
          gpu_err = std::max(gpu_err, std::fabs(gv[o] - exact));
          cpu_err = std::max(cpu_err, std::fabs(cv[o] - exact));
          largest = std::max(largest, std::fabs(exact));
        }
      }
    }
    EXPECT_LE(gpu_err, std::max(2 * cpu_err, 2e-6 * largest)) << "CPU's error " << cpu_err << ", largest " << largest;
    std::printf("thin gemm case %zu: largest |value| %.3g, error vs exact: GPU %.3g, CPU %.3g\n", i, largest, gpu_err,
                cpu_err);
  }
}

TEST_F(CudaLinalg, LinearDenseWeightsEveryDtypeAndRowCount) {
  for (Dtype wd : {Dtype::f32, Dtype::f16, Dtype::bf16}) {
    Tensor w = random_tensor({129, 67}, 37, wd), bias = random_tensor({129}, 38, wd);
    for (int64_t m : {1, 3, 8, 9, 67}) {
      SCOPED_TRACE(std::string(dtype_name(wd)) + " m=" + std::to_string(m));
      Tensor x = random_tensor({m, 67}, 39 + static_cast<uint32_t>(m));
      // Past 8 rows bf16 weights run cuBLAS on x rounded to bf16 (2^-9 relative per
      // element): outputs of ~10 move by ~1e-2.
      const bool bf16_x = wd == Dtype::bf16 && m > 8;
      expect_matches(ops::linear(on_cuda(x), on_cuda(w), on_cuda(bias)), ops::linear(x, w, bias), bf16_x ? 1e-2 : 1e-5,
                     bf16_x ? 5e-2 : 1e-5);
    }
  }
}

// k a multiple of 8 with aligned rows: the vectorized decode matvec (16-byte loads) serves
// f16 / bf16 weights for 1..8 rows; a weight view with an odd row stride falls back.
TEST_F(CudaLinalg, LinearDenseVectorizedMatvecEveryRowCount) {
  for (Dtype wd : {Dtype::f16, Dtype::bf16}) {
    Tensor w = random_tensor({131, 264}, 52, wd);
    for (int64_t m = 1; m <= 8; ++m) {
      SCOPED_TRACE(std::string(dtype_name(wd)) + " m=" + std::to_string(m));
      Tensor x = random_tensor({m, 264}, 53 + static_cast<uint32_t>(m));
      // 264 products summed in another order (8-wide partial sums per lane, then the warp):
      // a few f32 ulps of partial sums of ~10 (seen on an H200: 1.2e-5 at |y| 0.08).
      expect_matches(ops::linear(on_cuda(x), on_cuda(w)), ops::linear(x, w), 1e-5, 5e-5);
    }
    Tensor wide = random_tensor({131, 270}, 54, wd);
    Tensor x = random_tensor({2, 264}, 55);
    Tensor cut = wide.slice(1, 0, 264);  // row stride 270: not the vectorized layout
    expect_matches(ops::linear(on_cuda(x), on_cuda(wide).slice(1, 0, 264)), ops::linear(x, cut), 1e-5, 5e-5);
  }
}

TEST_F(CudaLinalg, QuantizeMatchesCpuBitForBit) {
  Tensor w = random_tensor({33, 384}, 40, Dtype::f32, -0.5f, 0.7f);
  for (int bits : {2, 3, 4, 5, 6, 8}) {
    for (int group : {32, 64, 128}) {
      for (Dtype sd : {Dtype::f32, Dtype::bf16}) {
        SCOPED_TRACE("bits=" + std::to_string(bits) + " group=" + std::to_string(group));
        QuantizedWeight c = QuantizedWeight::quantize(w, bits, group, sd);
        QuantizedWeight g = QuantizedWeight::quantize(on_cuda(w), bits, group, sd);
        expect_identical(g.w, c.w);
        expect_identical(g.scales, c.scales);
        expect_identical(g.biases, c.biases);
      }
    }
  }
}

TEST_F(CudaLinalg, QuantizedLinearEveryLayoutStoredAndPrepared) {
  // The exact f32 paths: bf16-scale weights past 8 rows would otherwise take the bf16 GEMM
  // (LMX_CUDA_QUANT_BF16_PREFILL), and 2..8 rows the few-row GEMM on bf16-rounded x
  // (LMX_CUDA_QUANT_FEW_ROWS_SMALL); both tested in cuda_quant_matvec_test.cpp.
  const testing::ScopedEnv exact("LMX_CUDA_QUANT_BF16_PREFILL", "0"), matvec("LMX_CUDA_QUANT_FEW_ROWS_SMALL", "0");
  for (int bits : {2, 3, 4, 5, 6, 8}) {
    for (int group : {32, 64, 128}) {
      SCOPED_TRACE("bits=" + std::to_string(bits) + " group=" + std::to_string(group));
      QuantizedWeight c = QuantizedWeight::quantize(random_tensor({129, 256}, 41, Dtype::f32, -0.5f, 0.5f), bits,
                                                    group, Dtype::bf16);
      QuantizedWeight g = c;
      g.w = on_cuda(c.w), g.scales = on_cuda(c.scales), g.biases = on_cuda(c.biases);
      // dequantize: scale * q + bias in f32, the same values bit for bit.
      expect_identical(g.dequantize(), c.dequantize());
      Tensor bias = random_tensor({129}, 42);
      for (int64_t m : {1, 5, 67}) {
        Tensor x = random_tensor({m, 256}, 43 + static_cast<uint32_t>(m));
        expect_matches(ops::quantized_linear(on_cuda(x), g, on_cuda(bias)), ops::quantized_linear(x, c, bias), 1e-5,
                       1e-5);
      }
      QuantizedWeight p = g;
      p.prepare();
      ASSERT_FALSE(p.has_mlx_tensors());
      Tensor x = random_tensor({3, 256}, 44);
      expect_matches(ops::quantized_linear(on_cuda(x), p, Tensor()), ops::quantized_linear(x, c, Tensor()), 1e-5,
                     1e-5);
      // Past 8 rows: dequantized to f32 and cuBLAS SGEMM.
      Tensor x67 = random_tensor({67, 256}, 45);
      expect_matches(ops::quantized_linear(on_cuda(x67), p, Tensor()), ops::quantized_linear(x67, c, Tensor()), 1e-5,
                     1e-5);
      expect_identical(p.dequantize(), c.dequantize());
      QuantizedWeight back = p.mlx_layout();
      expect_identical(back.w, c.w);
      expect_identical(back.scales, c.scales);
      expect_identical(back.biases, c.biases);
      // Rows by id: several in one gather launch (MLX tensors or the prepared layout), one alone.
      Tensor ids = Tensor::from_vector<int64_t>({128, 0, 7, 7}, {2, 2});
      expect_identical(p.dequantize_rows(ids), c.dequantize_rows(ids));
      expect_identical(g.dequantize_rows(ids), c.dequantize_rows(ids));
      Tensor one = Tensor::from_vector<int64_t>({5}, {1});
      expect_identical(p.dequantize_rows(one), c.dequantize_rows(one));
      EXPECT_THROW(p.dequantize_rows(Tensor::from_vector<int64_t>({3, 129}, {2})), InvalidArgument);
    }
  }
}

TEST_F(CudaLinalg, PreparedTargetsShareOneInput) {
  const testing::ScopedEnv matvec("LMX_CUDA_QUANT_FEW_ROWS_SMALL", "0");  // 2 rows, f16 scales: the exact matvec
  QuantizedWeight q1 = QuantizedWeight::quantize(random_tensor({64, 128}, 45), 4, 64, Dtype::f16);
  QuantizedWeight q2 = QuantizedWeight::quantize(random_tensor({96, 128}, 46), 8, 32, Dtype::f32);
  QuantizedWeight g1 = q1, g2 = q2;
  for (QuantizedWeight* g : {&g1, &g2}) {
    g->w = on_cuda(g->w), g->scales = on_cuda(g->scales), g->biases = on_cuda(g->biases);
    g->prepare();
  }
  Tensor x = random_tensor({2, 128}, 47);
  const QuantizedWeight* cw[] = {&q1, &q2};
  const QuantizedWeight* gw[] = {&g1, &g2};
  Tensor biases[] = {random_tensor({64}, 48), Tensor()};
  Tensor gbiases[] = {on_cuda(biases[0]), Tensor()};
  auto want = ops::quantized_linears(x, cw, biases);
  auto got = ops::quantized_linears(on_cuda(x), gw, gbiases);
  ASSERT_EQ(got.size(), 2u);
  for (size_t i = 0; i < 2; ++i) expect_matches(got[i], want[i], 1e-5, 1e-5);
}

// Projections of one bit width over one x go in one launch (a decode step's q / k / v):
// row counts that leave partial blocks, group sizes that differ, 1 and 3 rows of x.
TEST_F(CudaLinalg, PreparedTargetsOfOneWidthShareOneLaunch) {
  // The shared-x matvec launch at 1 and 3 rows (at 2..8 rows the few-row GEMM, on bf16-rounded x, would take
  // them one at a time: cuda_quant_matvec_test.cpp).
  const testing::ScopedEnv matvec("LMX_CUDA_QUANT_FEW_ROWS_SMALL", "0");
  for (int bits : {4, 8}) {
    SCOPED_TRACE("bits=" + std::to_string(bits));
    const int64_t rows[] = {40, 9, 72};
    const int group[] = {64, 32, 64};
    // k = 256: 8 lanes per row; 4160: 16 (4-bit) or 32 (8-bit) lanes with a partial pass.
    for (int64_t k : {256, 4160}) {
    std::vector<QuantizedWeight> cpu, gpu;
    for (int i = 0; i < 3; ++i) {
      cpu.push_back(QuantizedWeight::quantize(random_tensor({rows[i], k}, 80 + i), bits, group[i],
                                              Dtype::bf16));
      QuantizedWeight g = cpu.back();
      g.w = on_cuda(g.w), g.scales = on_cuda(g.scales), g.biases = on_cuda(g.biases);
      g.prepare();
      gpu.push_back(g);
    }
    const QuantizedWeight* cw[] = {&cpu[0], &cpu[1], &cpu[2]};
    const QuantizedWeight* gw[] = {&gpu[0], &gpu[1], &gpu[2]};
    Tensor biases[3], gbiases[3];
    biases[1] = random_tensor({rows[1]}, 84);
    gbiases[1] = on_cuda(biases[1]);
    for (int64_t m : {1, 3}) {
      SCOPED_TRACE("k=" + std::to_string(k) + " m=" + std::to_string(m));
      Tensor x = random_tensor({m, k}, 85 + static_cast<uint32_t>(m));
      auto want = ops::quantized_linears(x, cw, biases);
      auto got = ops::quantized_linears(on_cuda(x), gw, gbiases);
      ASSERT_EQ(got.size(), 3u);
      // 3e-5 + 1e-4 relative: the kernel sums scale * sum(q x) + bias * sum(x), and with 8-bit
      // codes (q up to 255) the two terms can be far larger than |y| and cancel; measured on an H100: 1.7e-5
      // at |y| 0.35, 8-bit only (4-bit passed 1e-5).
      for (size_t i = 0; i < 3; ++i) expect_matches(got[i], want[i], 3e-5, 1e-4);
    }
    }
  }
}

// Dense projections over one x go in one launch (ops::linears): f16 / bf16, row counts that
// leave partial blocks, k giving 8, 16 and 32 lanes per row, 1 and 3 rows of x; f32 and
// mixed dtypes fall back to one launch each.
TEST_F(CudaLinalg, DenseTargetsShareOneLaunch) {
  const int64_t rows[] = {40, 9, 72};
  for (Dtype wd : {Dtype::f16, Dtype::bf16, Dtype::f32}) {
    for (int64_t k : {256, 1032, 2056}) {
      std::vector<Tensor> cpu, gpu;
      for (int i = 0; i < 3; ++i) {
        cpu.push_back(random_tensor({rows[i], k}, 90 + static_cast<uint32_t>(i), wd));
        gpu.push_back(on_cuda(cpu.back()));
      }
      const Tensor* cw[] = {&cpu[0], &cpu[1], &cpu[2]};
      const Tensor* gw[] = {&gpu[0], &gpu[1], &gpu[2]};
      Tensor biases[3], gbiases[3];
      biases[2] = random_tensor({rows[2]}, 94);
      gbiases[2] = on_cuda(biases[2]);
      for (int64_t m : {1, 3}) {
        SCOPED_TRACE(std::string(dtype_name(wd)) + " k=" + std::to_string(k) + " m=" + std::to_string(m));
        Tensor x = random_tensor({m, k}, 95 + static_cast<uint32_t>(m + k));
        auto want = ops::linears(x, cw, biases);
        auto got = ops::linears(on_cuda(x), gw, gbiases);
        ASSERT_EQ(got.size(), 3u);
        for (size_t i = 0; i < 3; ++i) {
          // k up to 2056 products in another order: partial sums reach ~sqrt(k) and differ
          // by a few f32 ulps of those (measured on an H100: 5.9e-5 at |y| 1.4, f16, k 2056).
          expect_matches(got[i], want[i], 1e-5, 1e-4);
          // linears is linear() for each weight on the CPU, bit for bit.
          EXPECT_EQ(want[i].to_float_vector(), ops::linear(x, cpu[i], biases[i]).to_float_vector());
        }
      }
    }
  }
}

TEST_F(CudaLinalg, ArgmaxPicksAsMaxElement) {
  Backend& cuda = backend_for(Device::cuda());
  Backend& cpu = backend_for(Device::cpu());
  for (int64_t n : {1, 7, 1000, 151936}) {
    Tensor x = random_tensor({n}, 49 + static_cast<uint32_t>(n));
    Tensor d = on_cuda(x);
    EXPECT_EQ(cuda.argmax_f32(d.data<float>(), n), cpu.argmax_f32(x.data<float>(), n));
  }
  // Ties go to the first index; NaNs are passed over unless at 0.
  const float nan = std::numeric_limits<float>::quiet_NaN();
  for (std::vector<float> v : {std::vector<float>{1, 3, 3, 2}, {nan, 5, 1}, {1, nan, 5, nan, 5}, {-1, -1}}) {
    Tensor x = Tensor::from_vector<float>(v, {static_cast<int64_t>(v.size())});
    Tensor d = on_cuda(x);
    EXPECT_EQ(cuda.argmax_f32(d.data<float>(), x.numel()), cpu.argmax_f32(x.data<float>(), x.numel()));
  }
}

}  // namespace
}  // namespace lmx
