#include "lmx/core/ops/reduce.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "lmx/base/error.h"
#include "../test_util.h"

namespace lmx {
namespace {

using testing::at;
using testing::random_tensor;

TEST(Reduce, SumMeanMaxMinAlongEachAxis) {
  Tensor x = random_tensor({3, 4, 5}, 60);
  for (int axis = 0; axis < 3; ++axis) {
    Tensor s = ops::sum(x, axis), m = ops::mean(x, axis), mx = ops::max(x, axis, true),
           mn = ops::min(x, axis), lse = ops::logsumexp(x, axis), am = ops::argmax(x, axis);
    EXPECT_EQ(mx.ndim(), 3);
    EXPECT_EQ(mx.dim(axis), 1);
    int64_t n = x.dim(axis);
    for (int64_t i = 0; i < 3; ++i)
      for (int64_t j = 0; j < 4; ++j)
        for (int64_t k = 0; k < 5; ++k) {
          std::vector<int64_t> idx{i, j, k};
          if (idx[axis] != 0) continue;
          double sum = 0, best = -1e30, worst = 1e30;
          int64_t best_i = 0;
          for (int64_t t = 0; t < n; ++t) {
            idx[axis] = t;
            double v = at(x, idx);
            sum += v;
            if (v > best) best = v, best_i = t;
            worst = std::min(worst, v);
          }
          double lse_ref = 0;
          for (int64_t t = 0; t < n; ++t) {
            idx[axis] = t;
            lse_ref += std::exp(at(x, idx) - best);
          }
          lse_ref = best + std::log(lse_ref);
          idx.erase(idx.begin() + axis);
          EXPECT_NEAR(at(s, idx), sum, 1e-5);
          EXPECT_NEAR(at(m, idx), sum / n, 1e-6);
          EXPECT_EQ(at(mn, idx), static_cast<float>(worst));
          EXPECT_NEAR(at(lse, idx), lse_ref, 1e-5);
          EXPECT_EQ(at(am, idx), best_i);
          idx.insert(idx.begin() + axis, 0);
          EXPECT_EQ(at(mx, idx), static_cast<float>(best));
        }
  }
  EXPECT_THROW(ops::sum(x, 3), InvalidArgument);
}

TEST(Reduce, ArgmaxFirstOfTiesAndIntegerSums) {
  Tensor x = Tensor::from_vector<float>({1, 5, 5, 2}, {4});
  EXPECT_EQ(ops::argmax(x, 0).item<int>(), 1);
  Tensor i = Tensor::from_vector<int64_t>({int64_t{1} << 40, 3}, {2});
  Tensor s = ops::sum(i, 0);
  EXPECT_EQ(s.dtype(), Dtype::i64);
  EXPECT_EQ(s.item<int64_t>(), (int64_t{1} << 40) + 3);
  EXPECT_NEAR(ops::sum_all(random_tensor({1000, 300}, 61, Dtype::f32, 1, 1.0001f)).item<double>(),
              300000.0, 30.0);
}

TEST(Reduce, TopKSortedWithIndices) {
  Tensor x = random_tensor({3, 50}, 62);
  auto [v, idx] = ops::top_k(x, 7);
  EXPECT_EQ(v.shape(), (Shape{3, 7}));
  for (int64_t r = 0; r < 3; ++r) {
    std::vector<float> row;
    for (int64_t j = 0; j < 50; ++j) row.push_back(static_cast<float>(at(x, {r, j})));
    std::vector<float> sorted = row;
    std::sort(sorted.begin(), sorted.end(), std::greater<float>());
    for (int64_t j = 0; j < 7; ++j) {
      EXPECT_EQ(at(v, {r, j}), sorted[j]);
      EXPECT_EQ(row[static_cast<size_t>(at(idx, {r, j}))], sorted[j]);
    }
  }
  EXPECT_THROW(ops::top_k(x, 0), InvalidArgument);
  EXPECT_THROW(ops::top_k(x, 51), InvalidArgument);
}

TEST(Reduce, ArgsortIsStable) {
  Tensor x = Tensor::from_vector<float>({3, 1, 2, 1, 3}, {5});
  EXPECT_EQ(ops::argsort(x).to_int_vector(), (std::vector<int64_t>{1, 3, 2, 0, 4}));
  EXPECT_EQ(ops::argsort(x, true).to_int_vector(), (std::vector<int64_t>{0, 4, 2, 1, 3}));
}

}  // namespace
}  // namespace lmx
