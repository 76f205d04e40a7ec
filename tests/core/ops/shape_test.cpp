#include "lmx/core/ops/shape.h"

#include <gtest/gtest.h>

#include "lmx/base/error.h"
#include "../test_util.h"

namespace lmx {
namespace {

using testing::at;
using testing::random_tensor;

TEST(ShapeOps, ConcatAlongMiddleAxisWithStridedInputs) {
  Tensor a = random_tensor({2, 3, 4}, 70);
  Tensor b = random_tensor({4, 2, 2}, 71).permute({1, 2, 0});  // [2, 2, 4], strided
  Tensor c = ops::concat({a, b}, 1);
  ASSERT_EQ(c.shape(), (Shape{2, 5, 4}));
  for (int64_t i = 0; i < 2; ++i)
    for (int64_t j = 0; j < 5; ++j)
      for (int64_t k = 0; k < 4; ++k)
        EXPECT_EQ(at(c, {i, j, k}), j < 3 ? at(a, {i, j, k}) : at(b, {i, j - 3, k}));
  EXPECT_THROW(ops::concat({a, random_tensor({3, 3, 4}, 1)}, 1), ShapeError);
  EXPECT_THROW(ops::concat({a, a.to(Dtype::bf16)}, 1), InvalidArgument);
  EXPECT_THROW(ops::concat({}, 0), InvalidArgument);
}

TEST(ShapeOps, StackSplitRepeatInterleave) {
  Tensor a = random_tensor({2, 3}, 72), b = random_tensor({2, 3}, 73);
  Tensor s = ops::stack({a, b}, 1);
  ASSERT_EQ(s.shape(), (Shape{2, 2, 3}));
  EXPECT_EQ(at(s, {1, 1, 2}), at(b, {1, 2}));
  auto parts = ops::split(s, {1, 1}, 1);
  EXPECT_EQ(at(parts[1], {0, 0, 1}), at(b, {0, 1}));
  EXPECT_THROW(ops::split(s, {1, 2}, 1), ShapeError);
  Tensor r = ops::repeat_interleave(a, 3, 0);
  ASSERT_EQ(r.shape(), (Shape{6, 3}));
  for (int64_t i = 0; i < 6; ++i) EXPECT_EQ(at(r, {i, 2}), at(a, {i / 3, 2}));
}

}  // namespace
}  // namespace lmx
