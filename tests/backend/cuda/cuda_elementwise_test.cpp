// The generic tensor plumbing on CUDA (copies, conversions, element-wise ops with
// broadcasting, fills, gathers) against the CPU loops of lmx/core.
#include <gtest/gtest.h>

#include "cuda_test_util.h"
#include "lmx/core/ops/elementwise.h"
#include "lmx/core/ops/index.h"
#include "lmx/core/ops/shape.h"

namespace lmx {
namespace {

using testing::expect_identical;
using testing::expect_matches;
using testing::on_cuda;
using testing::random_tensor;
using CudaElementwise = testing::CudaTest;

Tensor random_ints(const Shape& shape, uint32_t seed, Dtype dtype) {
  return random_tensor(shape, seed, Dtype::f32, -50.0f, 50.0f).to(dtype);
}

TEST_F(CudaElementwise, StridedCopiesConvertAsTheCpuDoes) {
  const Dtype all[] = {Dtype::f32, Dtype::f16, Dtype::bf16, Dtype::i32, Dtype::i64, Dtype::u8, Dtype::u32, Dtype::boolean};
  // Values in [-100, 100] (in [0, 200] where the target is unsigned: C++ leaves a
  // negative value converted to an unsigned type undefined, on either side).
  Tensor base = random_tensor({3, 5, 67}, 11, Dtype::f32, -100.0f, 100.0f);
  for (Dtype from : all) {
    for (Dtype to : all) {
      SCOPED_TRACE(std::string(dtype_name(from)) + " -> " + std::string(dtype_name(to)));
      const bool unsigned_to = to == Dtype::u8 || to == Dtype::u32 || from == Dtype::u8 || from == Dtype::u32;
      Tensor src = (unsigned_to ? ops::add(base, 100.0) : base).to(from);
      Tensor view = src.transpose(0, 2).slice(1, 1, 5, 2);  // strided, non-contiguous
      Tensor dview = on_cuda(src).transpose(0, 2).slice(1, 1, 5, 2);
      expect_identical(dview.to(to), view.to(to));
    }
    Tensor src = base.to(from);
    Tensor view = src.transpose(0, 2).slice(1, 1, 5, 2);
    Tensor dview = on_cuda(src).transpose(0, 2).slice(1, 1, 5, 2);
    expect_identical(dview.contiguous(), view.contiguous());
    Tensor host = dview.to(Device::cpu());
    EXPECT_TRUE(host.device().is_cpu());
    EXPECT_EQ(host.to(Dtype::f32).to_float_vector(), view.to(Dtype::f32).to_float_vector());
  }
}

TEST_F(CudaElementwise, CopyIntoStridedDestinationAcrossDevices) {
  Tensor src = random_tensor({4, 9}, 12);
  Tensor dst_cpu = Tensor::zeros({9, 4, 2}, Dtype::bf16);
  Tensor dst_cuda = Tensor::zeros({9, 4, 2}, Dtype::bf16, Device::cuda());
  dst_cpu.select(2, 1).transpose(0, 1).copy_(src);
  dst_cuda.select(2, 1).transpose(0, 1).copy_(src);  // host source into a device view
  expect_identical(dst_cuda, dst_cpu);
  Tensor back = Tensor::empty({4, 9}, Dtype::f32);
  back.copy_(dst_cuda.select(2, 1).transpose(0, 1));  // device view into host
  expect_identical(on_cuda(back), src.to(Dtype::bf16).to(Dtype::f32));
}

TEST_F(CudaElementwise, FillsAndFull) {
  for (Dtype d : {Dtype::f32, Dtype::bf16, Dtype::f16, Dtype::i64, Dtype::boolean}) {
    expect_identical(Tensor::full({3, 129}, 1.37, d, Device::cuda()), Tensor::full({3, 129}, 1.37, d));
    expect_identical(Tensor::zeros({67}, d, Device::cuda()), Tensor::zeros({67}, d));
  }
}

TEST_F(CudaElementwise, UnaryOpsMatchCpu) {
  Tensor x = random_tensor({7, 129}, 13, Dtype::f32, -4.0f, 4.0f);
  Tensor pos = random_tensor({7, 129}, 14, Dtype::f32, 0.05f, 9.0f);
  const ops::UnaryOp all[] = {ops::UnaryOp::neg,     ops::UnaryOp::abs,      ops::UnaryOp::square,
                              ops::UnaryOp::exp,     ops::UnaryOp::log,      ops::UnaryOp::sqrt,
                              ops::UnaryOp::rsqrt,   ops::UnaryOp::tanh,     ops::UnaryOp::sigmoid,
                              ops::UnaryOp::silu,    ops::UnaryOp::gelu,     ops::UnaryOp::gelu_tanh,
                              ops::UnaryOp::softplus, ops::UnaryOp::sin,     ops::UnaryOp::cos,
                              ops::UnaryOp::erf};
  for (ops::UnaryOp op : all) {
    SCOPED_TRACE(static_cast<int>(op));
    const bool needs_positive = op == ops::UnaryOp::log || op == ops::UnaryOp::sqrt || op == ops::UnaryOp::rsqrt;
    Tensor in = needs_positive ? pos : x;
    // f32 device math (expf, erff, ...) is within 2 ulp of glibc's. GELU's 1 + erf(x / sqrt 2)
    // cancels for x < -2 (both backends use that formula, as PyTorch does), so its error is
    // absolute: 0.5 |x| times 2 ulp of 1, up to 4.8e-7 for |x| <= 4 (seen on an H200: 1.06e-7).
    const double abs_tol = op == ops::UnaryOp::gelu ? 5e-7 : 1e-7;
    expect_matches(ops::unary(op, on_cuda(in).transpose(0, 1)), ops::unary(op, in.transpose(0, 1)), 2e-6, abs_tol);
    expect_matches(ops::unary(op, on_cuda(in.to(Dtype::bf16))), ops::unary(op, in.to(Dtype::bf16)), 1e-2, 1e-6);
  }
  Tensor ints = random_ints({5, 33}, 15, Dtype::i32);
  for (ops::UnaryOp op : {ops::UnaryOp::neg, ops::UnaryOp::abs, ops::UnaryOp::square, ops::UnaryOp::exp})
    expect_matches(ops::unary(op, on_cuda(ints)), ops::unary(op, ints), 2e-6, 0);
}

TEST_F(CudaElementwise, BinaryOpsBroadcastAndPromote) {
  Tensor a = random_tensor({2, 1, 67}, 16), b = random_tensor({5, 1}, 17, Dtype::bf16, 0.5f, 2.0f);
  const ops::BinaryOp all[] = {ops::BinaryOp::add,     ops::BinaryOp::sub,     ops::BinaryOp::mul, ops::BinaryOp::div,
                               ops::BinaryOp::maximum, ops::BinaryOp::minimum, ops::BinaryOp::pow};
  Tensor ia = random_ints({3, 1, 9}, 18, Dtype::i32), ib = random_ints({4, 1}, 19, Dtype::i64);
  for (ops::BinaryOp op : all) {
    SCOPED_TRACE(static_cast<int>(op));
    Tensor base = op == ops::BinaryOp::pow ? ops::abs(a) : a;
    expect_matches(ops::binary(op, on_cuda(base), on_cuda(b)), ops::binary(op, base, b), 2e-6, 1e-7);
    expect_matches(ops::binary(op, on_cuda(base), 1.5), ops::binary(op, base, 1.5), 2e-6, 1e-7);
    if (op != ops::BinaryOp::pow) expect_matches(ops::binary(op, on_cuda(ia), on_cuda(ib)), ops::binary(op, ia, ib), 1e-6, 0);
    expect_matches(ops::binary(op, on_cuda(b.to(Dtype::bf16)), on_cuda(b.to(Dtype::bf16).transpose(0, 1))),
                   ops::binary(op, b.to(Dtype::bf16), b.to(Dtype::bf16).transpose(0, 1)), 1e-2, 0);
  }
}

TEST_F(CudaElementwise, CompareAndWhere) {
  Tensor a = random_tensor({4, 1, 33}, 20).to(Dtype::bf16), b = random_tensor({3, 1}, 21);
  for (ops::CompareOp op : {ops::CompareOp::eq, ops::CompareOp::ne, ops::CompareOp::lt, ops::CompareOp::le,
                            ops::CompareOp::gt, ops::CompareOp::ge}) {
    expect_identical(ops::compare(op, on_cuda(a), on_cuda(b)), ops::compare(op, a, b));
    expect_identical(ops::compare(op, on_cuda(a), on_cuda(a)), ops::compare(op, a, a));
  }
  Tensor cond = ops::compare(ops::CompareOp::gt, a, b);
  Tensor x = random_tensor({33}, 22), y = random_tensor({4, 3, 1}, 23, Dtype::f16);
  expect_identical(ops::where(on_cuda(cond), on_cuda(x), on_cuda(y)), ops::where(cond, x, y));
  Tensor ix = random_ints({33}, 24, Dtype::i32), iy = random_ints({3, 1}, 25, Dtype::i64);
  expect_identical(ops::where(on_cuda(cond), on_cuda(ix), on_cuda(iy)), ops::where(cond, ix, iy));
}

TEST_F(CudaElementwise, TakeEmbeddingConcat) {
  Tensor table = random_tensor({129, 80}, 26, Dtype::bf16);
  Tensor ids = Tensor::from_vector<int64_t>({5, 0, 128, 5, 77, 3}, {2, 3});
  expect_identical(ops::embedding(on_cuda(table), ids), ops::embedding(table, ids));
  expect_identical(ops::embedding(on_cuda(table), on_cuda(ids)), ops::embedding(table, ids));
  Tensor x = random_tensor({3, 67, 5}, 27);
  Tensor idx = Tensor::from_vector<int32_t>({66, 1, 2, 1}, {4});
  expect_identical(ops::take(on_cuda(x), idx, 1), ops::take(x, idx, 1));
  Tensor odd = random_tensor({7, 3}, 28, Dtype::bf16);  // 6-byte rows: the byte-wise gather
  expect_identical(ops::take(on_cuda(odd), idx.slice(0, 1, 4), 0), ops::take(odd, idx.slice(0, 1, 4), 0));
  Tensor y = random_tensor({3, 2, 5}, 29);
  expect_identical(ops::concat({on_cuda(x), on_cuda(y)}, 1), ops::concat({x, y}, 1));
  expect_identical(ops::repeat_interleave(on_cuda(y), 3, 1), ops::repeat_interleave(y, 3, 1));
}

}  // namespace
}  // namespace lmx
