#include "lmx/core/tensor.h"

#include <gtest/gtest.h>

#include "lmx/core/allocator.h"
#include "lmx/core/backend.h"
#include "lmx/base/error.h"
#include "test_util.h"

namespace lmx {
namespace {

using testing::at;
using testing::random_tensor;

TEST(Tensor, FactoriesAndMetadata) {
  Tensor t = Tensor::zeros({2, 3, 4});
  EXPECT_EQ(t.numel(), 24);
  EXPECT_EQ(t.ndim(), 3);
  EXPECT_EQ(t.dim(-1), 4);
  EXPECT_EQ(t.strides(), (Shape{12, 4, 1}));
  EXPECT_TRUE(t.is_contiguous());
  EXPECT_EQ(t.nbytes(), 96u);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(t.raw_data()) % 64, 0u);
  EXPECT_THROW(t.dim(3), InvalidArgument);
  Tensor f = Tensor::full({3}, 2.5, Dtype::bf16);
  EXPECT_EQ(f.to_float_vector(), (std::vector<float>{2.5f, 2.5f, 2.5f}));
  EXPECT_EQ(Tensor::arange(4).to_int_vector(), (std::vector<int64_t>{0, 1, 2, 3}));
}

TEST(Tensor, OverflowingShapeIsAShapeError) {
  EXPECT_THROW(Tensor::empty({int64_t{1} << 40, int64_t{1} << 40}, Dtype::f32), ShapeError);
  EXPECT_THROW(Tensor::empty({-1, 3}, Dtype::f32), ShapeError);
  EXPECT_THROW(Tensor::empty({int64_t{1} << 62}, Dtype::f32), ShapeError);
}

TEST(Tensor, TransposeAndSliceAreViews) {
  Tensor t = random_tensor({3, 5}, 1);
  Tensor tt = t.transpose(0, 1);
  EXPECT_EQ(tt.shape(), (Shape{5, 3}));
  EXPECT_FALSE(tt.is_contiguous());
  EXPECT_EQ(tt.storage(), t.storage());
  for (int64_t i = 0; i < 3; ++i)
    for (int64_t j = 0; j < 5; ++j) EXPECT_EQ(at(tt, {j, i}), at(t, {i, j}));
  Tensor s = t.slice(1, 1, 5, 2);  // columns 1 and 3
  EXPECT_EQ(s.shape(), (Shape{3, 2}));
  for (int64_t i = 0; i < 3; ++i) {
    EXPECT_EQ(at(s, {i, 0}), at(t, {i, 1}));
    EXPECT_EQ(at(s, {i, 1}), at(t, {i, 3}));
  }
  Tensor neg = t.slice(0, -2, 100);
  EXPECT_EQ(neg.shape(), (Shape{2, 5}));
  EXPECT_EQ(at(neg, {0, 0}), at(t, {1, 0}));
  EXPECT_EQ(t.select(0, -1).shape(), (Shape{5}));
  EXPECT_THROW(t.select(0, 3), InvalidArgument);
}

TEST(Tensor, ContiguousCopyOfPermutedView) {
  Tensor t = random_tensor({2, 3, 4}, 2);
  Tensor p = t.permute({2, 0, 1});
  Tensor c = p.contiguous();
  EXPECT_TRUE(c.is_contiguous());
  EXPECT_EQ(c.shape(), (Shape{4, 2, 3}));
  for (int64_t a = 0; a < 4; ++a)
    for (int64_t b = 0; b < 2; ++b)
      for (int64_t d = 0; d < 3; ++d) EXPECT_EQ(at(c, {a, b, d}), at(t, {b, d, a}));
  EXPECT_THROW(t.permute({0, 0, 1}), InvalidArgument);
}

TEST(Tensor, ReshapeInfersAndCopiesWhenNeeded) {
  Tensor t = random_tensor({4, 6}, 3);
  Tensor r = t.reshape({2, -1, 3});
  EXPECT_EQ(r.shape(), (Shape{2, 4, 3}));
  EXPECT_EQ(r.storage(), t.storage());
  Tensor tr = t.transpose(0, 1).reshape({24});
  EXPECT_NE(tr.storage(), t.storage());
  auto v = tr.to_float_vector();
  for (int64_t j = 0; j < 6; ++j)
    for (int64_t i = 0; i < 4; ++i) EXPECT_EQ(v[j * 4 + i], at(t, {i, j}));
  EXPECT_THROW(t.reshape({5, 5}), ShapeError);
  EXPECT_THROW(t.reshape({-1, -1}), ShapeError);
}

TEST(Tensor, ExpandBroadcastsWithZeroStrides) {
  Tensor t = random_tensor({3, 1}, 4);
  Tensor e = t.expand({2, 3, 5});
  EXPECT_EQ(e.strides()[0], 0);
  EXPECT_EQ(e.strides()[2], 0);
  EXPECT_EQ(at(e, {1, 2, 4}), at(t, {2, 0}));
  EXPECT_THROW(t.expand({3, 2, 2}), ShapeError);
}

TEST(Tensor, CastRoundsToNearestEven) {
  Tensor t = Tensor::from_vector<float>({1.0f, 1.00390625f, 1.01171875f, -3.5f}, {4});
  Tensor b = t.to(Dtype::bf16);
  auto v = b.to_float_vector();
  EXPECT_EQ(v[1], 1.0f);
  EXPECT_EQ(v[2], 1.015625f);
  Tensor i = t.to(Dtype::i32);
  EXPECT_EQ(i.to_int_vector(), (std::vector<int64_t>{1, 1, 1, -3}));
  EXPECT_THROW(t.data<int32_t>(), InvalidArgument);
}

TEST(Tensor, WrapDoesNotCopyAndKeepsOwnerAlive) {
  auto owner = std::make_shared<std::vector<float>>(std::vector<float>{1, 2, 3, 4, 5, 6});
  Tensor t = Tensor::wrap(owner->data(), {2, 3}, Dtype::f32, owner);
  std::weak_ptr<std::vector<float>> weak = owner;
  owner.reset();
  EXPECT_FALSE(weak.expired());
  EXPECT_EQ(t.data<float>()[4], 5.0f);
  EXPECT_TRUE(t.storage()->is_foreign());
  t = Tensor();
  EXPECT_TRUE(weak.expired());
}

TEST(Allocator, StatsTrackActivePeakAndCache) {
  Allocator& a = allocator_for(Device::cpu());
  a.clear_cache();
  a.reset_peak();
  size_t base = a.stats().active_bytes;
  {
    Tensor t = Tensor::empty({1 << 20}, Dtype::f32);  // 4 MiB, huge-page path
    EXPECT_GE(a.stats().active_bytes, base + (4u << 20));
    EXPECT_GE(a.stats().peak_bytes, base + (4u << 20));
  }
  EXPECT_EQ(a.stats().active_bytes, base);
  EXPECT_GE(a.stats().cache_bytes, 4u << 20);
  // The cached buffer is reused.
  void* first = nullptr;
  {
    Tensor t = Tensor::empty({1 << 20}, Dtype::f32);
    first = t.raw_data();
  }
  {
    Tensor t = Tensor::empty({1 << 20}, Dtype::f32);
    EXPECT_EQ(t.raw_data(), first);
  }
  a.clear_cache();
  EXPECT_EQ(a.stats().cache_bytes, 0u);
}

TEST(Allocator, MemoryLimitThrowsOutOfMemory) {
  Allocator& a = allocator_for(Device::cpu());
  size_t active = a.stats().active_bytes;
  a.set_memory_limit(active + (8u << 20));
  EXPECT_THROW(Tensor::empty({16 << 20}, Dtype::f32), OutOfMemory);
  Tensor ok = Tensor::empty({1 << 20}, Dtype::f32);
  a.set_memory_limit(0);
  EXPECT_EQ(ok.numel(), 1 << 20);
}

TEST(Tensor, CudaDeviceIsUnsupportedWithoutBackend) {
  if (built_with_cuda()) GTEST_SKIP() << "built with CUDA: tests/backend/cuda covers the device";
  EXPECT_THROW(Tensor::empty({4}, Dtype::f32, Device::cuda()), Unsupported);
  EXPECT_THROW(Tensor::zeros({4}).to(Device::cuda()), Unsupported);
  EXPECT_THROW(backend_for(Device::cuda(1)), Unsupported);
}

}  // namespace
}  // namespace lmx
