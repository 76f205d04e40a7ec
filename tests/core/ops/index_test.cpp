#include "lmx/core/ops/index.h"

#include <gtest/gtest.h>

#include "lmx/base/error.h"
#include "../test_util.h"

namespace lmx {
namespace {

using testing::at;
using testing::random_tensor;

TEST(Index, EmbeddingGathersRows) {
  Tensor table = random_tensor({10, 4}, 80, Dtype::bf16);
  Tensor ids = Tensor::from_vector<int32_t>({3, 0, 9, 3, 7, 1}, {2, 3});
  Tensor e = ops::embedding(table, ids);
  ASSERT_EQ(e.shape(), (Shape{2, 3, 4}));
  EXPECT_EQ(e.dtype(), Dtype::bf16);
  std::vector<int> flat{3, 0, 9, 3, 7, 1};
  for (int64_t i = 0; i < 6; ++i)
    for (int64_t d = 0; d < 4; ++d) EXPECT_EQ(at(e, {i / 3, i % 3, d}), at(table, {flat[i], d}));
}

TEST(Index, TakeAlongMiddleAxis) {
  Tensor x = random_tensor({2, 5, 3}, 81);
  Tensor idx = Tensor::from_vector<int64_t>({4, 4, 0}, {3});
  Tensor t = ops::take(x, idx, 1);
  ASSERT_EQ(t.shape(), (Shape{2, 3, 3}));
  for (int64_t i = 0; i < 2; ++i)
    for (int64_t j = 0; j < 3; ++j)
      for (int64_t k = 0; k < 3; ++k) EXPECT_EQ(at(t, {i, j, k}), at(x, {i, j < 2 ? 4 : 0, k}));
}

TEST(Index, OutOfRangeIdsAreClearErrors) {
  Tensor table = random_tensor({10, 4}, 82);
  EXPECT_THROW(ops::embedding(table, Tensor::from_vector<int32_t>({10}, {1})), InvalidArgument);
  EXPECT_THROW(ops::embedding(table, Tensor::from_vector<int32_t>({-1}, {1})), InvalidArgument);
  EXPECT_THROW(ops::embedding(table, Tensor::from_vector<float>({1.0f}, {1})), InvalidArgument);
  try {
    ops::embedding(table, Tensor::from_vector<int32_t>({1, 12}, {2}));
    FAIL();
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("index 12"), std::string::npos);
  }
}

TEST(Index, TakeAlongLastAxis) {
  Tensor x = random_tensor({2, 6}, 83);
  Tensor idx = Tensor::from_vector<int32_t>({5, 0, 2, 2}, {2, 2});
  Tensor t = ops::take_along_last_axis(x, idx);
  EXPECT_EQ(at(t, {0, 0}), at(x, {0, 5}));
  EXPECT_EQ(at(t, {1, 1}), at(x, {1, 2}));
}

}  // namespace
}  // namespace lmx
