// The tensor-core decode matvec of MLX affine 4 / 8-bit weights (quant_matvec_mma.cu)
// against the CPU backend, on row counts that leave partial 16-row tiles, k that splits
// unevenly among warps, every group size and scale dtype, and many tiles per block.
//
// Error bound: both sides sum exact products (the GPU's q * x products are exact: x is
// taken as three bf16 parts, q as bf16 integers), so they differ only by the rounding of
// f32 sums in another order: per group the mma's sums (<= 3 * 64 * 2 terms) and then the
// sums over the ngroups groups, each step within 2^-23 of its partial sum's magnitude. So
// |gpu - cpu| <= (ngroups + 64) * 2^-23 * sum_p (|scale * q_p| + |bias|) * |x_p| per output,
// which is what the test allows (a lost nibble, a wrong scale or x part misses it by far).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <string>
#include <vector>

#include "cuda_test_util.h"
#include "lmx/core/ops/linalg.h"
#include "lmx/core/quantized_weight.h"

namespace lmx {
namespace {

using testing::on_cuda;
using testing::random_tensor;

// Each test sets its path's switch on for its own duration, whatever the environment says.
using CudaQuantMatvec = testing::CudaTest;

// sum_p (|scale * q_p| + |bias|) |x_p| per row of w (x one row).
std::vector<double> magnitude(const QuantizedWeight& w, const Tensor& x) {
  const std::vector<float> wd = w.dequantize().to_float_vector(), b = w.biases.to_float_vector(),
                           xv = x.to_float_vector();
  const int64_t n = w.out_features(), k = w.in_features(), groups = k / w.group_size;
  std::vector<double> out(static_cast<size_t>(n));
  for (int64_t j = 0; j < n; ++j) {
    double s = 0;
    for (int64_t p = 0; p < k; ++p) {
      const double bias = b[static_cast<size_t>(j * groups + p / w.group_size)];
      s += (std::fabs(wd[static_cast<size_t>(j * k + p)] - bias) + std::fabs(bias)) * std::fabs(xv[static_cast<size_t>(p)]);
    }
    out[static_cast<size_t>(j)] = s;
  }
  return out;
}

void expect_within_bound(const Tensor& got, const Tensor& want, const QuantizedWeight& w, const Tensor& x) {
  ASSERT_TRUE(got.device().is_cuda());
  ASSERT_EQ(got.shape(), want.shape());
  const std::vector<float> g = got.to_float_vector(), c = want.to_float_vector();
  const std::vector<double> mag = magnitude(w, x);
  const double factor = static_cast<double>(w.in_features() / w.group_size + 64) * std::ldexp(1.0, -23);
  for (size_t j = 0; j < c.size(); ++j) {
    ASSERT_NEAR(g[j], c[j], factor * mag[j]) << "row " << j << " of " << c.size();
  }
}

QuantizedWeight quantized(int64_t n, int64_t k, int bits, int group, Dtype scale_dtype, uint32_t seed) {
  return QuantizedWeight::quantize(random_tensor({n, k}, seed, Dtype::f32, -0.5f, 0.5f), bits, group, scale_dtype);
}

QuantizedWeight prepared_on_cuda(const QuantizedWeight& c) {
  QuantizedWeight g = c;
  g.w = on_cuda(c.w), g.scales = on_cuda(c.scales), g.biases = on_cuda(c.biases);
  g.prepare();
  return g;
}

TEST_F(CudaQuantMatvec, EveryGroupScaleDtypeAndSplit) {
  const testing::ScopedEnv on("LMX_CUDA_QUANT_MMA", "1");
  for (int bits : {4, 8}) {
    for (int group : {32, 64, 128}) {
      for (Dtype sd : {Dtype::bf16, Dtype::f16, Dtype::f32}) {
        // k = 384: a few groups per row; 4224: up to 8 warps per 16-row tile, uneven shares.
        for (int64_t k : {384, 4224}) {
          SCOPED_TRACE("bits=" + std::to_string(bits) + " group=" + std::to_string(group) + " scales=" +
                       std::string(dtype_name(sd)) + " k=" + std::to_string(k));
          const QuantizedWeight c = quantized(131, k, bits, group, sd, 100 + static_cast<uint32_t>(k) + bits);
          const QuantizedWeight p = prepared_on_cuda(c);
          const Tensor x = random_tensor({1, k}, 7 + static_cast<uint32_t>(group));
          expect_within_bound(ops::quantized_linear(on_cuda(x), p), ops::quantized_linear(x, c), c, x);
          QuantizedWeight held = c;  // MLX tensors on the device, not prepared
          held.w = on_cuda(c.w), held.scales = on_cuda(c.scales), held.biases = on_cuda(c.biases);
          expect_within_bound(ops::quantized_linear(on_cuda(x), held), ops::quantized_linear(x, c), c, x);
        }
      }
    }
  }
}

// More tiles than the grid has blocks (each block loops), and q / k / v-like targets of one
// launch with partial tiles.
TEST_F(CudaQuantMatvec, ManyTilesAndSharedInput) {
  const testing::ScopedEnv on("LMX_CUDA_QUANT_MMA", "1");
  for (int bits : {4, 8}) {
    SCOPED_TRACE("bits=" + std::to_string(bits));
    const QuantizedWeight big = quantized(40007, 256, bits, 64, Dtype::bf16, 300 + bits);
    const Tensor x = random_tensor({1, 256}, 301);
    expect_within_bound(ops::quantized_linear(on_cuda(x), prepared_on_cuda(big)), ops::quantized_linear(x, big),
                        big, x);

    const int64_t rows[] = {131, 37, 45};
    std::vector<QuantizedWeight> cpu, gpu;
    for (int i = 0; i < 3; ++i) {
      cpu.push_back(quantized(rows[i], 1024, bits, 64, Dtype::bf16, 310 + static_cast<uint32_t>(i)));
      gpu.push_back(prepared_on_cuda(cpu.back()));
    }
    const QuantizedWeight* cw[] = {&cpu[0], &cpu[1], &cpu[2]};
    const QuantizedWeight* gw[] = {&gpu[0], &gpu[1], &gpu[2]};
    Tensor none[3];
    const Tensor xs = random_tensor({1, 1024}, 320);
    const auto want = ops::quantized_linears(xs, cw, none);
    const auto got = ops::quantized_linears(on_cuda(xs), gw, none);
    ASSERT_EQ(got.size(), 3u);
    for (size_t i = 0; i < 3; ++i) expect_within_bound(got[i], want[i], cpu[i], xs);
  }
}

// MLX's floating-point modes run on CUDA through the generic kernels (each code decoded
// in the loop): dequantize bit for bit, and x @ W^T for decode and prefill row counts
// within f32 rounding of the CPU's (scale * element is exact in f32 on both sides).
TEST_F(CudaQuantMatvec, FloatingPointModes) {
  const testing::ScopedEnv on("LMX_CUDA_FP_QUANT", "1");
  for (QuantMode mode : {QuantMode::mxfp4, QuantMode::mxfp8, QuantMode::nvfp4}) {
    SCOPED_TRACE(quant_mode_name(mode));
    const auto [group, bits] = default_group_size_and_bits(mode);
    const QuantizedWeight c = QuantizedWeight::quantize(random_tensor({77, 160}, 400, Dtype::f32, -3.0f, 3.0f), bits,
                                                        group, Dtype::bf16, mode);
    QuantizedWeight held = c;
    held.w = on_cuda(c.w), held.scales = on_cuda(c.scales);
    testing::expect_identical(held.dequantize(), c.dequantize());
    QuantizedWeight p = held;
    p.prepare();
    ASSERT_FALSE(p.has_mlx_tensors());
    testing::expect_identical(p.dequantize(), c.dequantize());
    const QuantizedWeight back = p.mlx_layout();
    testing::expect_identical(back.w, c.w);
    testing::expect_identical(back.scales, c.scales);
    for (int64_t m : {1, 3, 20}) {
      SCOPED_TRACE("m=" + std::to_string(m));
      const Tensor x = random_tensor({m, 160}, 401 + static_cast<uint32_t>(m));
      testing::expect_matches(ops::quantized_linear(on_cuda(x), held), ops::quantized_linear(x, c), 1e-5, 1e-4);
      testing::expect_matches(ops::quantized_linear(on_cuda(x), p), ops::quantized_linear(x, c), 1e-5, 1e-4);
    }
  }
}

// Past 8 rows with LMX_CUDA_QUANT_BF16_PREFILL=1, a bf16 / f16 model's weight (bf16 / f16 scales) at
// the default reduced activation precision is dequantized to bf16 and x rounded to bf16
// for the bf16 tensor-core GEMM, as dense bf16 weights past 8 rows: 2^-9 relative per
// input element, outputs of ~3 move by up to ~2e-2 (the dense bf16 test's bound). At f32
// activations it stays exact (dequantize to f32, SGEMM).
TEST_F(CudaQuantMatvec, Bf16PrefillOfBf16Models) {
  const testing::ScopedEnv on("LMX_CUDA_QUANT_BF16_PREFILL", "1");
  for (Dtype scales : {Dtype::bf16, Dtype::f16})
  for (int bits : {3, 4, 8}) {
    SCOPED_TRACE(std::string(dtype_name(scales)) + " scales, bits=" + std::to_string(bits));
    const QuantizedWeight c = quantized(129, 256, bits, 64, scales, 500 + bits);
    const QuantizedWeight p = prepared_on_cuda(c);
    const Tensor x = random_tensor({67, 256}, 501);
    testing::expect_matches(ops::quantized_linear(on_cuda(x), p), ops::quantized_linear(x, c), 1e-2, 5e-2);
    const ops::QuantActivations before = ops::quant_activations();
    ops::set_quant_activations(ops::QuantActivations::f32);
    testing::expect_matches(ops::quantized_linear(on_cuda(x), p), ops::quantized_linear(x, c), 1e-5, 1e-5);
    ops::set_quant_activations(before);
  }
}

// A batched decode step's rows (2..64) over 4 / 8-bit weights with bf16 or f16 scales (bf16
// and f16 models) at reduced activation precision: the few-row tensor-core GEMM equals the
// CPU's exact f32 path on x rounded to bf16 (x's rounding is the kernel's design; its only
// other error is f32 sums, held to the matvec's bound row by row), every group size, odd row
// counts and widths.
TEST_F(CudaQuantMatvec, FewRowsEqualTheCpuOnBf16RoundedX) {
  const testing::ScopedEnv on("LMX_CUDA_QUANT_FEW_ROWS", "1"), small("LMX_CUDA_QUANT_FEW_ROWS_SMALL", "1");
  const ops::QuantActivations before = ops::quant_activations();
  struct Shape {
    int64_t n, k, m;
  };
  uint32_t seed = 900;
  for (Dtype scales : {Dtype::bf16, Dtype::f16}) {
  for (int bits : {4, 8}) {
    for (int group : {32, 64, 128}) {
      for (const Shape& sh : {Shape{37, group * 3, 2}, Shape{64, group * 4, 5}, Shape{129, group * 2, 8},
                              Shape{45, group * 5, 9}, Shape{129, group * 3, 16}, Shape{200, group * 7, 17},
                              Shape{33, group * 2, 32}, Shape{70, group * 4, 33}, Shape{16, group * 9, 64},
                              Shape{1000, 2048, 32}}) {
        SCOPED_TRACE(std::string(dtype_name(scales)) + " scales, bits " + std::to_string(bits) + " group " +
                     std::to_string(group) + " n " +
                     std::to_string(sh.n) + " k " + std::to_string(sh.k) + " m " + std::to_string(sh.m));
        const QuantizedWeight c = quantized(sh.n, sh.k, bits, group, scales, seed++);
        const QuantizedWeight p = prepared_on_cuda(c);
        const Tensor x = random_tensor({sh.m, sh.k}, seed++);
        const Tensor xr = x.to(Dtype::bf16).to(Dtype::f32);
        ops::set_quant_activations(ops::QuantActivations::f32);
        const Tensor want = ops::quantized_linear(xr, c);
        ops::set_quant_activations(ops::QuantActivations::int16);
        const Tensor got = ops::quantized_linear(on_cuda(x), p);
        ops::set_quant_activations(before);
        ASSERT_EQ(got.shape(), want.shape());
        for (int64_t r = 0; r < sh.m; ++r) {
          SCOPED_TRACE("row " + std::to_string(r));
          expect_within_bound(got.slice(0, r, r + 1), want.slice(0, r, r + 1), c, xr.slice(0, r, r + 1));
        }
      }
    }
  }
  }
}

}  // namespace
}  // namespace lmx
