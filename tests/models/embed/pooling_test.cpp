// sentence-transformers' pooling modes against values computed by hand on a small
// hidden state; padding rows hold huge values that must never reach a result.
#include <gtest/gtest.h>

#include <cmath>

#include "lmx/base/error.h"
#include "lmx/models/embed/pooling.h"

namespace lmx::models::embed {
namespace {

// Batch 2, seq 3, dim 2. Row 0 has 3 real tokens, row 1 has 2 (its third is padding).
Tensor hidden() {
  return Tensor::from_vector<float>({1.0f, -2.0f, 3.0f, 0.5f, -1.0f, 4.0f,  //
                                     2.0f, 1.0f, -3.0f, 6.0f, 1e6f, -1e6f},
                                    {2, 3, 2});
}
const std::vector<int64_t> kLengths = {3, 2};

std::vector<float> run(std::vector<PoolingMode> modes) {
  return pool(hidden(), kLengths, modes).to_float_vector();
}

TEST(Pooling, EachModeByHand) {
  using M = PoolingMode;
  EXPECT_EQ(run({M::cls}), (std::vector<float>{1, -2, 2, 1}));
  EXPECT_EQ(run({M::last_token}), (std::vector<float>{-1, 4, -3, 6}));
  EXPECT_EQ(run({M::max}), (std::vector<float>{3, 4, 2, 6}));
  const auto mean = run({M::mean});
  EXPECT_FLOAT_EQ(mean[0], 1.0f);        // (1 + 3 - 1) / 3
  EXPECT_FLOAT_EQ(mean[1], 2.5f / 3.0f);  // (-2 + 0.5 + 4) / 3
  EXPECT_FLOAT_EQ(mean[2], -0.5f);       // (2 - 3) / 2
  EXPECT_FLOAT_EQ(mean[3], 3.5f);        // (1 + 6) / 2
  const auto sqrt_len = run({M::mean_sqrt_len});
  EXPECT_FLOAT_EQ(sqrt_len[0], 3.0f / std::sqrt(3.0f));
  EXPECT_FLOAT_EQ(sqrt_len[3], 7.0f / std::sqrt(2.0f));
  const auto weighted = run({M::weighted_mean});  // weights 1, 2, 3 by position
  EXPECT_FLOAT_EQ(weighted[0], (1.0f + 6.0f - 3.0f) / 6.0f);
  EXPECT_FLOAT_EQ(weighted[1], (-2.0f + 1.0f + 12.0f) / 6.0f);
  EXPECT_FLOAT_EQ(weighted[2], (2.0f - 6.0f) / 3.0f);
  EXPECT_FLOAT_EQ(weighted[3], (1.0f + 12.0f) / 3.0f);
}

TEST(Pooling, SeveralModesConcatenateInTheGivenOrder) {
  const auto v = run({PoolingMode::cls, PoolingMode::max});
  EXPECT_EQ(v, (std::vector<float>{1, -2, 3, 4, 2, 1, 2, 6}));
}

TEST(Pooling, ParsesSentenceTransformersAndShortNames) {
  EXPECT_EQ(parse_pooling_mode("first"), PoolingMode::cls);
  EXPECT_EQ(parse_pooling_mode("last"), PoolingMode::last_token);
  EXPECT_EQ(parse_pooling_mode("lasttoken"), PoolingMode::last_token);
  EXPECT_EQ(parse_pooling_mode("weightedmean"), PoolingMode::weighted_mean);
  EXPECT_THROW(parse_pooling_mode("median"), InvalidArgument);
}

TEST(Pooling, RejectsBadLengths) {
  EXPECT_THROW(pool(hidden(), {3, 0}, std::vector<PoolingMode>{PoolingMode::mean}), InvalidArgument);
  EXPECT_THROW(pool(hidden(), {3, 4}, std::vector<PoolingMode>{PoolingMode::mean}), InvalidArgument);
  EXPECT_THROW(pool(hidden(), {3}, std::vector<PoolingMode>{PoolingMode::mean}), ShapeError);
}

TEST(Pooling, NormalizeGivesUnitRowsAndKeepsZeroRows) {
  auto v = l2_normalize_rows(Tensor::from_vector<float>({3, 4, 0, 0}, {2, 2})).to_float_vector();
  EXPECT_FLOAT_EQ(v[0], 0.6f);
  EXPECT_FLOAT_EQ(v[1], 0.8f);
  EXPECT_EQ(v[2], 0.0f);
  EXPECT_EQ(v[3], 0.0f);
}

}  // namespace
}  // namespace lmx::models::embed
