// Runs on a machine with an NVIDIA GPU (the device machine); skips where none is visible.
#include "lmx/backend/cuda/cuda_backend.h"

#include <gtest/gtest.h>

#include "lmx/core/allocator.h"
#include "lmx/base/error.h"
#include "lmx/core/ops/elementwise.h"
#include "lmx/core/tensor.h"
#include "../../core/test_util.h"

namespace lmx {
namespace {

class CudaBackend : public ::testing::Test {
 protected:
  void SetUp() override {
    if (cuda::device_count() == 0) GTEST_SKIP() << "no CUDA device visible";
  }
};

TEST_F(CudaBackend, CopiesRoundTripExactly) {
  Tensor x = testing::random_tensor({37, 129}, 1);
  Tensor d = x.to(Device::cuda());
  EXPECT_TRUE(d.device().is_cuda());
  EXPECT_EQ(d.to(Device::cpu()).to_float_vector(), x.to_float_vector());
  Tensor b = testing::random_tensor({5, 7}, 2, Dtype::bf16);
  EXPECT_EQ(b.to(Device::cuda()).to(Device::cpu()).to_float_vector(), b.to_float_vector());
}

TEST_F(CudaBackend, BinaryKernelMatchesCpu) {
  Tensor a = testing::random_tensor({1000, 333}, 3), b = testing::random_tensor({1000, 333}, 4);
  Tensor da = a.to(Device::cuda()), db = b.to(Device::cuda());
  for (auto op : {ops::BinaryOp::add, ops::BinaryOp::sub, ops::BinaryOp::mul, ops::BinaryOp::div}) {
    auto got = ops::binary(op, da, db).to(Device::cpu()).to_float_vector();
    auto want = ops::binary(op, a, b).to_float_vector();
    testing::expect_close(got, want, 1e-6, 0);
  }
  EXPECT_THROW(ops::add(da, testing::random_tensor({1}, 5)), InvalidArgument);  // mixed devices
}

TEST_F(CudaBackend, AllocatorCachesAndCountsBytes) {
  Allocator& a = allocator_for(Device::cuda());
  a.clear_cache();
  size_t before = a.stats().active_bytes;
  void* first;
  {
    Tensor t = Tensor::empty({1 << 20}, Dtype::f32, Device::cuda());
    first = t.raw_data();
    EXPECT_GE(a.stats().active_bytes, before + (4u << 20));
  }
  EXPECT_EQ(a.stats().active_bytes, before);
  Tensor again = Tensor::empty({1 << 20}, Dtype::f32, Device::cuda());
  EXPECT_EQ(again.raw_data(), first);
  a.set_memory_limit(a.stats().active_bytes + (1u << 20));
  EXPECT_THROW(Tensor::empty({1 << 22}, Dtype::f32, Device::cuda()), OutOfMemory);
  a.set_memory_limit(0);
}

}  // namespace
}  // namespace lmx
