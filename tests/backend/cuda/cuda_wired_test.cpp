// The CUDA side of the wired limit (lmx/backend/cuda/cuda_wired.h) on a real GPU: the
// device's default pool really holds the reserved bytes, and trimming gives them back.
// Runs on the device machine; skips where no GPU is visible.
#include "lmx/backend/cuda/cuda_wired.h"

#include <gtest/gtest.h>

#include "lmx/backend/cuda/cuda_backend.h"

namespace lmx {
namespace {

constexpr size_t kMiB = size_t{1} << 20;

class CudaWired : public ::testing::Test {
 protected:
  void SetUp() override {
    if (cuda::device_count() == 0) GTEST_SKIP() << "no CUDA device visible";
  }
};

TEST_F(CudaWired, RecommendedWorkingSetIsFreeMemoryMinusTheReserve) {
  const auto all = cuda::recommended_working_set(0, 0);
  const auto less = cuda::recommended_working_set(0, 1024 * kMiB);
  ASSERT_TRUE(all && less);
  EXPECT_GT(*all, 4096 * kMiB);  // an H100 / H200 has tens of GiB free
  // Free memory moves a little between the calls; the reserve is what separates them.
  EXPECT_NEAR(static_cast<double>(*all - *less), static_cast<double>(1024 * kMiB), 64.0 * kMiB);
  EXPECT_FALSE(cuda::recommended_working_set(9999, 0).has_value());  // no such device
}

TEST_F(CudaWired, PoolHoldsTheReservationAndTrimsBack) {
  ASSERT_EQ(cuda::reserve_pool(0, 0), "");
  const size_t start = cuda::reserved_pool_bytes(0);
  EXPECT_LT(start, 64 * kMiB);
  ASSERT_EQ(cuda::reserve_pool(0, 512 * kMiB), "");
  EXPECT_GE(cuda::reserved_pool_bytes(0), 512 * kMiB);
  // Growing keeps what is held and adds the rest; shrinking trims.
  ASSERT_EQ(cuda::reserve_pool(0, 768 * kMiB), "");
  EXPECT_GE(cuda::reserved_pool_bytes(0), 768 * kMiB);
  ASSERT_EQ(cuda::reserve_pool(0, 128 * kMiB), "");
  EXPECT_LE(cuda::reserved_pool_bytes(0), 128 * kMiB + 64 * kMiB);
  ASSERT_EQ(cuda::reserve_pool(0, 0), "");
  EXPECT_LE(cuda::reserved_pool_bytes(0), start + 64 * kMiB);
  // More than the device has: a reason, not a crash.
  EXPECT_NE(cuda::reserve_pool(0, size_t{1} << 50), "");
  EXPECT_EQ(cuda::reserve_pool(0, 0), "");
}

}  // namespace
}  // namespace lmx
