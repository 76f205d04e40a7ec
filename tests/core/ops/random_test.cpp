#include "lmx/core/ops/random.h"

#include <gtest/gtest.h>

#include <cmath>

#include "lmx/base/thread_pool.h"
#include "lmx/base/error.h"

namespace lmx {
namespace {

TEST(Random, SameSeedSameValuesWhateverTheThreadCount) {
  ThreadPool::set_global_threads(1);
  auto one = ops::RandomGenerator(5).normal({300, 301}).to_float_vector();
  ThreadPool::set_global_threads(3);
  auto three = ops::RandomGenerator(5).normal({300, 301}).to_float_vector();
  ThreadPool::set_global_threads(0);
  EXPECT_EQ(one, three);
  auto other = ops::RandomGenerator(6).normal({300, 301}).to_float_vector();
  EXPECT_NE(one, other);
}

TEST(Random, UniformAndNormalMoments) {
  ops::RandomGenerator g(1234);
  auto u = g.uniform({200000}, -1.0f, 3.0f).to_float_vector();
  double mean = 0, var = 0;
  for (float v : u) {
    ASSERT_GE(v, -1.0f);
    ASSERT_LT(v, 3.0f);
    mean += v;
  }
  mean /= u.size();
  for (float v : u) var += (v - mean) * (v - mean);
  var /= u.size();
  // Uniform(-1, 3): mean 1, variance 16/12. Bounds are ~6 standard errors.
  EXPECT_NEAR(mean, 1.0, 6 * std::sqrt(16.0 / 12 / 200000));
  EXPECT_NEAR(var, 16.0 / 12, 0.02);
  auto n = g.normal({200000}, 2.0f, 0.5f).to_float_vector();
  mean = var = 0;
  for (float v : n) mean += v;
  mean /= n.size();
  for (float v : n) var += (v - mean) * (v - mean);
  var /= n.size();
  EXPECT_NEAR(mean, 2.0, 6 * 0.5 / std::sqrt(200000.0));
  EXPECT_NEAR(var, 0.25, 0.01);
  EXPECT_THROW(g.uniform({3}, 1.0f, 1.0f), InvalidArgument);
}

TEST(Random, CategoricalFollowsSoftmax) {
  // logits log(1), log(2), -inf, log(5): probabilities 1/8, 2/8, 0, 5/8.
  Tensor logits = Tensor::from_vector<float>(
      {0.0f, std::log(2.0f), -INFINITY, std::log(5.0f)}, {1, 4});
  ops::RandomGenerator g(99);
  const int draws = 40000;
  int counts[4] = {0, 0, 0, 0};
  for (int i = 0; i < draws; ++i) counts[g.categorical(logits).to_int_vector()[0]]++;
  EXPECT_EQ(counts[2], 0);
  const double p[4] = {1.0 / 8, 2.0 / 8, 0, 5.0 / 8};
  for (int i : {0, 1, 3}) {
    double sd = std::sqrt(draws * p[i] * (1 - p[i]));
    EXPECT_NEAR(counts[i], draws * p[i], 5 * sd) << i;
  }
  Tensor all_masked = Tensor::from_vector<float>({-INFINITY, -INFINITY}, {2});
  EXPECT_THROW(g.categorical(all_masked), InvalidArgument);
}

}  // namespace
}  // namespace lmx
